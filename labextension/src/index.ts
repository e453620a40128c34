/**
 * nbremote in JupyterLab: a Promote button on code cells (cell toolbar, context menu, command
 * palette), the Remote side panel and a status-bar item, over the jupyter-server extension's
 * `/nbremote/api` (never the runner itself: the browser has no runner token).
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { RemoteApi } from './api';
import { RemoteBadges } from './badge';
import { PromoteDialog, Promoted } from './dialog';
import { magicLine, promoteCode, PromoteForm, splitCell } from './magic';
import { RemotePanel } from './panel';
import { RemoteState } from './state';
import { RemoteStatus } from './status';

const PROMOTE = 'nbremote:promote';
const OPEN_PANEL = 'nbremote:open-panel';

const promoteIcon = new LabIcon({
  name: 'nbremote:promote',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><path class="jp-icon3" fill="#616161" d="M12 3l7 7h-4v8h-6v-8H5z"/><path class="jp-icon3" fill="#616161" d="M6 20h12v2H6z"/></svg>'
});

/** Runs code in a kernel without touching the notebook; the error it raised, if any. */
async function execute(panel: NotebookPanel, code: string): Promise<string | null> {
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel) {
    throw new Error('this notebook has no kernel: start one (Kernel menu), then promote');
  }
  const future = kernel.requestExecute({ code, silent: false, store_history: false, allow_stdin: false });
  let error: string | null = null;
  future.onIOPub = message => {
    if (message.header.msg_type === 'error') {
      const content = message.content as { ename: string; evalue: string };
      error = `${content.ename}: ${content.evalue}`.replace(/\x1b\[[0-9;]*m/g, '');
    }
  };
  const reply = await future.done;
  const content = reply.content as { status: string; ename?: string; evalue?: string };
  if (content.status !== 'ok' && !error) {
    error = content.ename
      ? `${content.ename}: ${content.evalue ?? ''}`.replace(/\x1b\[[0-9;]*m/g, '')
      : `the kernel answered ${content.status}`;
  }
  return error;
}

function defaultName(panel: NotebookPanel): string {
  const stem = panel.context.path.split('/').pop()!.replace(/\.ipynb$/, '');
  const index = panel.content.activeCellIndex + 1;
  const name = `${stem}-cell-${index}`.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return (name || `cell-${index}`).slice(0, 64);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbremote:plugin',
  description: 'The Promote button, the Remote panel and the status-bar item of nbremote.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null
  ) => {
    const settings = ServerConnection.makeSettings();
    const api = new RemoteApi((path, init) =>
      ServerConnection.makeRequest(URLExt.join(settings.baseUrl, path), init, settings)
    );
    const state = new RemoteState(URLExt.join(settings.baseUrl, 'nbremote/api/events'));
    const panel = new RemotePanel(state, api);
    new RemoteBadges(state);
    panel.title.icon = promoteIcon;
    app.shell.add(panel, 'right', { rank: 900 });

    async function promote(notebook: NotebookPanel, code: string, form: PromoteForm): Promise<Promoted> {
      const line = magicLine(form); // a bad field fails here, naming it
      if (form.kind === 'schedule') {
        await api.schedulePreview(form.schedule, form.tz); // a bad cron fails before the kernel
      }
      const error = await execute(notebook, promoteCode(line, code));
      if (error) {
        throw new Error(error);
      }
      if (form.kind === 'schedule') {
        return { kind: 'schedule', job: await api.job(form.name) };
      }
      // A cell answers at its path under the endpoint's URL: that is the URL to call.
      const endpoint = await api.endpoint(form.name);
      const path = form.path.trim().replace(/^\/$/, '');
      return { kind: 'endpoint', endpoint: { ...endpoint, url: endpoint.url + path } };
    }

    app.commands.addCommand(PROMOTE, {
      label: 'Promote',
      caption: 'Promote this cell to an HTTP endpoint or a scheduled job on the nbremote runner',
      icon: promoteIcon,
      isVisible: () => tracker.activeCell?.model.type === 'code',
      execute: () => {
        const notebook = tracker.currentWidget;
        const cell = tracker.activeCell;
        if (!notebook || !cell || cell.model.type !== 'code') {
          return;
        }
        const { code, gpu, image } = splitCell(cell.model.sharedModel.getSource());
        const dialog = new PromoteDialog(api, form => promote(notebook, code, form), {
          name: defaultName(notebook),
          gpu,
          image
        });
        dialog.open();
      }
    });
    app.commands.addCommand(OPEN_PANEL, {
      label: 'Open the Remote panel',
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: PROMOTE, category: 'nbremote' });
    palette?.addItem({ command: OPEN_PANEL, category: 'nbremote' });

    if (statusBar) {
      const item = new RemoteStatus(state, () => tracker.currentWidget?.context.path ?? null, () =>
        app.shell.activateById(panel.id)
      );
      tracker.currentChanged.connect(() => item.render());
      statusBar.registerStatusItem('nbremote:status', { item, align: 'left', rank: 50 });
    }
  }
};

export default plugin;
