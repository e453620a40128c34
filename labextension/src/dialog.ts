/**
 * The Promote dialog: Endpoint (name, method, path, public) or Schedule (name, cron with its
 * plain-language preview and next three runs, time zone), plus GPU and image. It stays open on
 * submit: it shows the endpoint's URL and token (with copy buttons and a request to try), the
 * job's next fire times, or the error, in place.
 */

import { Widget } from '@lumino/widgets';

import { Endpoint, Job, RemoteApi } from './api';
import { describeSchedule } from './cron';
import { copyButton, fireTime, h } from './dom';
import { PromoteForm } from './magic';

export type Promoted = { kind: 'endpoint'; endpoint: Endpoint } | { kind: 'schedule'; job: Job };

function localZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

function field(label: string, input: HTMLElement): HTMLElement {
  return h('label', { class: 'nbremote-field' }, h('span', {}, label), input);
}

export class PromoteDialog extends Widget {
  private readonly inputs: Record<string, HTMLInputElement | HTMLSelectElement> = {};
  private readonly preview = h('div', { class: 'nbremote-preview' });
  private readonly fires = h('ul', { class: 'nbremote-fires' });
  private readonly error = h('div', { class: 'nbremote-error', role: 'alert' });
  private readonly result = h('div', { class: 'nbremote-result' });
  private readonly submit: HTMLButtonElement;
  private kind: 'endpoint' | 'schedule' = 'endpoint';
  private previewTimer = 0;

  constructor(
    private readonly api: RemoteApi,
    private readonly promote: (form: PromoteForm) => Promise<Promoted>,
    defaults: { name: string; gpu: string; image: string }
  ) {
    super();
    this.addClass('nbremote-dialog-backdrop');
    const input = (name: string, value = '', placeholder = ''): HTMLInputElement => {
      const element = h('input', { name, value, placeholder, class: 'jp-mod-styled' }) as HTMLInputElement;
      element.value = value;
      this.inputs[name] = element;
      return element;
    };
    const method = h('select', { name: 'method', class: 'jp-mod-styled' },
      ...['POST', 'GET', 'PUT', 'PATCH', 'DELETE'].map(m => h('option', { value: m }, m))) as HTMLSelectElement;
    this.inputs.method = method;
    const isPublic = h('input', { type: 'checkbox', name: 'public' }) as HTMLInputElement;
    this.inputs.public = isPublic;
    const tabs = h('div', { class: 'nbremote-tabs', role: 'tablist' });
    const endpointPart = h('div', { class: 'nbremote-part', 'data-kind': 'endpoint' },
      field('Method', method), field('Path', input('path', '/', '/')),
      h('label', { class: 'nbremote-field nbremote-check' }, isPublic, h('span', {}, 'Public (callers need no token)')));
    const schedule = input('schedule', '0 2 * * *', '0 2 * * *, @daily or every 10m');
    const tz = input('tz', localZone(), 'Europe/Berlin');
    const schedulePart = h('div', { class: 'nbremote-part', 'data-kind': 'schedule', hidden: true },
      field('Cron', schedule), this.preview, field('Time zone', tz), h('div', { class: 'nbremote-fires-title' }, 'Next runs'), this.fires);
    for (const [kind, label] of [['endpoint', 'Endpoint'], ['schedule', 'Schedule']] as const) {
      tabs.append(h('button', {
        class: 'jp-mod-styled nbremote-tab', role: 'tab', 'data-kind': kind, 'aria-selected': String(kind === 'endpoint'),
        onclick: () => {
          this.kind = kind;
          for (const tab of tabs.children) {
            tab.setAttribute('aria-selected', String((tab as HTMLElement).dataset.kind === kind));
          }
          endpointPart.hidden = kind !== 'endpoint';
          schedulePart.hidden = kind !== 'schedule';
          this.refreshPreview();
        }
      }, label));
    }
    for (const element of [schedule, tz]) {
      element.addEventListener('input', () => this.refreshPreview());
    }
    this.submit = h('button', { class: 'jp-mod-styled jp-mod-accept nbremote-submit', onclick: () => this.onSubmit() }, 'Promote') as HTMLButtonElement;
    const box = h('div', { class: 'nbremote-dialog', role: 'dialog', 'aria-label': 'Promote cell' },
      h('h2', {}, 'Promote cell'), tabs,
      field('Name', input('name', defaults.name, 'my-endpoint')),
      endpointPart, schedulePart,
      field('GPU', input('gpu', defaults.gpu, 'none, any, A100, H100:2')),
      field('Image', input('image', defaults.image, "the runner's default")),
      this.error, this.result,
      h('div', { class: 'nbremote-buttons' },
        h('button', { class: 'jp-mod-styled jp-mod-reject nbremote-close', onclick: () => this.dispose() }, 'Close'),
        this.submit));
    this.node.append(box);
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Escape') {
        this.dispose();
      }
    });
  }

  private value(name: string): string {
    return this.inputs[name].value;
  }

  private form(): PromoteForm {
    const common = { name: this.value('name').trim(), gpu: this.value('gpu'), image: this.value('image') };
    if (this.kind === 'endpoint') {
      return { ...common, kind: 'endpoint', method: this.value('method'), path: this.value('path'),
        isPublic: (this.inputs.public as HTMLInputElement).checked };
    }
    return { ...common, kind: 'schedule', schedule: this.value('schedule'), tz: this.value('tz') };
  }

  /** The wording at once, the next runs from the server a moment after typing stops. */
  private refreshPreview(): void {
    const described = describeSchedule(this.value('schedule'));
    this.preview.textContent = 'text' in described ? described.text : '';
    this.error.textContent = 'error' in described && this.kind === 'schedule' ? described.error : '';
    window.clearTimeout(this.previewTimer);
    this.previewTimer = window.setTimeout(async () => {
      try {
        const preview = await this.api.schedulePreview(this.value('schedule'), this.value('tz'));
        this.fires.replaceChildren(...preview.next_fires.map(when => h('li', {}, fireTime(when))));
        if (this.kind === 'schedule') {
          this.error.textContent = '';
        }
      } catch (error: any) {
        this.fires.replaceChildren();
        if (this.kind === 'schedule') {
          this.error.textContent = error.message;
        }
      }
    }, 250);
  }

  private async onSubmit(): Promise<void> {
    this.error.textContent = '';
    this.result.replaceChildren();
    this.submit.disabled = true;
    this.submit.textContent = 'Promoting…';
    try {
      this.showResult(await this.promote(this.form()));
    } catch (error: any) {
      this.error.textContent = error.message ?? String(error);
    } finally {
      this.submit.disabled = false;
      this.submit.textContent = 'Promote';
    }
  }

  private showResult(promoted: Promoted): void {
    if (promoted.kind === 'schedule') {
      const job = promoted.job;
      this.result.append(h('div', {}, `Scheduled job ${job.name}: ${job.schedule}`),
        h('ul', { class: 'nbremote-next' }, ...job.next_fires.map(when => h('li', {}, fireTime(when)))));
      return;
    }
    const endpoint = promoted.endpoint;
    const auth = endpoint.token ? ` -H 'Authorization: Bearer ${endpoint.token}'` : '';
    const body = endpoint.method === 'GET' ? '' : ` -H 'Content-Type: application/json' -d '{}'`;
    const curl = `curl -X ${endpoint.method ?? 'POST'}${auth}${body} ${endpoint.url}`;
    this.result.append(
      h('div', {}, `Serving endpoint ${endpoint.name}`),
      h('div', { class: 'nbremote-url' }, h('code', {}, endpoint.url), copyButton(endpoint.url, 'Copy URL')),
      endpoint.token
        ? h('div', { class: 'nbremote-token' }, h('code', {}, endpoint.token), copyButton(endpoint.token, 'Copy token'))
        : h('div', {}, 'public: callers send no token'),
      h('div', { class: 'nbremote-try' }, h('span', {}, 'curl:'), h('code', {}, curl), copyButton(curl, 'Copy')),
      this.tryBox(endpoint)
    );
  }

  /** A JSON body to send to the new endpoint, and what it answered. */
  private tryBox(endpoint: Endpoint): HTMLElement {
    const method = endpoint.method ?? 'POST';
    const body = h('textarea', { class: 'jp-mod-styled nbremote-try-body', rows: '3' }) as HTMLTextAreaElement;
    body.value = '{}';
    const answer = h('pre', { class: 'nbremote-try-answer' });
    const send = async (): Promise<void> => {
      answer.textContent = 'sending…';
      try {
        const parsed = method === 'GET' ? null : JSON.parse(body.value || 'null');
        const path = this.value('path').trim() || '/';
        const tried = await this.api.tryEndpoint(endpoint.name, { method, path, body: parsed });
        answer.textContent = `HTTP ${tried.status}\n${tried.body}${tried.truncated ? '\n…' : ''}`;
      } catch (error: any) {
        answer.textContent = error instanceof SyntaxError ? `not JSON: ${error.message}` : error.message;
      }
    };
    return h('div', { class: 'nbremote-try-box' },
      h('div', {}, `Try it: ${method} with a JSON body`),
      method === 'GET' ? null : body,
      h('button', { class: 'jp-mod-styled nbremote-try-send', onclick: () => void send() }, 'Send'),
      answer);
  }

  /** Show it over the page, the name field focused. */
  open(): void {
    Widget.attach(this, document.body);
    (this.inputs.name as HTMLInputElement).focus();
    this.refreshPreview();
  }
}
