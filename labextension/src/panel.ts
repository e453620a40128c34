/**
 * The Remote side panel: jobs, endpoints, GPUs and warm workers, redrawn from the live state
 * whenever a topic changes; its buttons act through `RemoteApi` and the next event shows the
 * result.
 */

import { showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { Endpoint, Gpu, Job, RemoteApi, Session, Topics } from './api';
import { bytes, copyButton, fireTime, h, shortPath, when } from './dom';
import { RemoteState } from './state';

export class RemotePanel extends Widget {
  private readonly sections: Record<string, HTMLElement> = {};

  constructor(
    private readonly state: RemoteState,
    private readonly api: RemoteApi
  ) {
    super();
    this.id = 'nbremote-panel';
    this.addClass('nbremote-panel');
    this.title.caption = 'Remote: jobs, endpoints, GPUs, warm workers';
    this.title.label = 'Remote';
    const status = h('div', { class: 'nbremote-panel-status' });
    this.node.append(h('h2', {}, 'Remote'), status);
    this.sections.status = status;
    for (const [key, title] of [
      ['jobs', 'Jobs'],
      ['endpoints', 'Endpoints'],
      ['gpus', 'GPUs'],
      ['sessions', 'Warm workers']
    ]) {
      const body = h('div', { class: 'nbremote-section-body' });
      this.node.append(h('section', { class: `nbremote-section nbremote-${key}` }, h('h3', {}, title), body));
      this.sections[key] = body;
    }
    state.changed.connect((_, topic) => this.render(topic));
    for (const topic of Object.keys(this.sections)) {
      this.render(topic as keyof Topics);
    }
  }

  private act(what: string, action: () => Promise<unknown>): void {
    action().catch(error => showErrorMessage(`nbremote: ${what}`, error.message ?? String(error)));
  }

  private render(topic: keyof Topics): void {
    const topics = this.state.topics;
    const body = this.sections[topic];
    if (!body) {
      return;
    }
    body.replaceChildren();
    if (topic === 'status') {
      const status = topics.status;
      body.append(
        !status
          ? 'connecting…'
          : status.connected
            ? `runner ${status.runner?.version ?? ''} (${status.runner?.backend ?? ''}) at ${status.url}`
            : `no runner: ${status.error ?? ''}`
      );
      body.dataset.connected = String(Boolean(status?.connected));
      return;
    }
    const rows: HTMLElement[] =
      topic === 'jobs'
        ? (topics.jobs?.jobs ?? []).map(job => this.job(job))
        : topic === 'endpoints'
          ? (topics.endpoints?.endpoints ?? []).map(endpoint => this.endpoint(endpoint))
          : topic === 'gpus'
            ? (topics.gpus?.gpus ?? []).map(gpu => this.gpu(gpu))
            : (topics.sessions?.sessions ?? []).filter(s => s.workers.length).map(s => this.session(s));
    if (!rows.length) {
      const none: Record<string, string> = {
        jobs: 'No scheduled jobs: promote a cell with the Promote button.',
        endpoints: 'No endpoints.',
        gpus: topics.gpus?.unavailable ?? 'No GPUs on this runner.',
        sessions: 'No warm workers.'
      };
      rows.push(h('div', { class: 'nbremote-empty' }, none[topic]));
    }
    body.append(...rows);
  }

  private job(job: Job): HTMLElement {
    const last = job.last_run;
    const duration =
      last?.started && last.finished ? ` in ${(last.finished - last.started).toFixed(1)} s` : '';
    const logs = h('pre', { class: 'nbremote-logs', hidden: true });
    return h(
      'div',
      { class: 'nbremote-row nbremote-job', 'data-name': job.name },
      h('div', { class: 'nbremote-row-title' }, h('b', {}, job.name), ` ${job.schedule}`, job.paused ? ' (paused)' : ''),
      h('div', {}, `next: ${job.paused || !job.next_fires[0] ? '-' : fireTime(job.next_fires[0])}`),
      h('div', {}, last ? `last run #${last.number}: ${last.status}${duration}` : 'not run yet'),
      h(
        'div',
        { class: 'nbremote-actions' },
        h('button', { class: 'jp-mod-styled', onclick: () => this.act('run now', () => this.api.runJob(job.name)) }, 'Run now'),
        h(
          'button',
          { class: 'jp-mod-styled', onclick: () => this.act('pause', () => this.api.pauseJob(job.name, !job.paused)) },
          job.paused ? 'Resume' : 'Pause'
        ),
        h(
          'button',
          {
            class: 'jp-mod-styled',
            onclick: () =>
              this.act('logs', async () => {
                const response = await this.api.jobRuns(job.name, 5);
                const runs = response.runs
                  .map(run => `#${run.number} ${run.status} ${when(run.started)} ${run.error ?? ''}`)
                  .join('\n');
                const log = response.runs.length ? await this.api.jobLog(job.name) : '';
                logs.hidden = false;
                logs.textContent = runs ? `${runs}\n\nlast run printed:\n${log}` : 'no runs yet';
              })
          },
          'Runs and log'
        ),
        h('button', { class: 'jp-mod-styled jp-mod-warn', onclick: () => this.act('delete', () => this.api.deleteJob(job.name)) }, 'Delete')
      ),
      logs
    );
  }

  private endpoint(endpoint: Endpoint): HTMLElement {
    const requests = h('pre', { class: 'nbremote-logs', hidden: true });
    const showRequests = (): void =>
      this.act('requests', async () => {
        const lines = (await this.api.endpointLog(endpoint.name)).trimEnd().split('\n');
        requests.hidden = false;
        requests.textContent = lines.slice(-20).join('\n') || 'no requests yet';
      });
    return h(
      'div',
      { class: 'nbremote-row nbremote-endpoint', 'data-name': endpoint.name },
      h('div', { class: 'nbremote-row-title' }, h('b', {}, endpoint.name), ` ${endpoint.method ?? ''}`),
      h('div', {}, h('code', {}, endpoint.url), ' ', copyButton(endpoint.url, 'Copy URL')),
      h(
        'div',
        { class: 'nbremote-actions' },
        endpoint.requires_auth
          ? h(
              'button',
              {
                class: 'jp-mod-styled',
                onclick: () =>
                  this.act('token', async () => {
                    const full = await this.api.endpoint(endpoint.name);
                    await navigator.clipboard.writeText(full.token ?? '');
                  })
              },
              'Copy token'
            )
          : 'public',
        h('button', { class: 'jp-mod-styled', onclick: showRequests }, 'Requests'),
        h(
          'button',
          { class: 'jp-mod-styled jp-mod-warn', onclick: () => this.act('delete', () => this.api.deleteEndpoint(endpoint.name)) },
          'Delete'
        )
      ),
      requests
    );
  }

  private gpu(gpu: Gpu): HTMLElement {
    const holder = gpu.holder;
    const who = holder ? `${holder.kind} ${holder.notebook ? shortPath(holder.notebook) : (holder.name ?? '')}${holder.idle ? ' (idle)' : ''}` : 'free';
    const memory = gpu.memory_total_bytes ? `${bytes(gpu.memory_used_bytes)} / ${bytes(gpu.memory_total_bytes)}` : '';
    const use = gpu.utilization_percent === null ? '' : `${gpu.utilization_percent}%`;
    return h('div', { class: 'nbremote-row nbremote-gpu' }, `${gpu.index}: ${gpu.name} · ${who} ${memory} ${use}`);
  }

  private session(session: Session): HTMLElement {
    const rss = session.workers.reduce((sum, worker) => sum + (worker.rss_bytes ?? 0), 0);
    const busy = session.workers.some(worker => worker.busy);
    return h(
      'div',
      { class: 'nbremote-row nbremote-session' },
      h('div', { class: 'nbremote-row-title', title: session.notebook ?? session.id }, h('b', {}, session.notebook ? shortPath(session.notebook) : session.id)),
      h('div', {}, `${session.workers.length} worker(s), ${bytes(rss)}${busy ? ', running a cell' : ', idle'}`),
      h(
        'div',
        { class: 'nbremote-actions' },
        h('button', { class: 'jp-mod-styled', onclick: () => this.act('stop', () => this.api.stopWorkers(session.id)) }, 'Stop')
      )
    );
  }
}
