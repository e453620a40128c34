/**
 * A small badge on a `%%remote` cell while it runs: that it runs remotely, on which runner, on
 * which GPU (the busy worker of the notebook's session holds them). It comes when the cell is
 * scheduled, follows the live state, and goes when the cell is done.
 */

import { Cell } from '@jupyterlab/cells';
import { NotebookActions } from '@jupyterlab/notebook';

import { h } from './dom';
import { RemoteState } from './state';

const BADGE = 'nbremote-badge';

function isRemote(cell: Cell): boolean {
  return cell.model.type === 'code' && cell.model.sharedModel.getSource().trimStart().startsWith('%%remote');
}

export class RemoteBadges {
  private readonly running = new Map<Cell, string>(); // a running remote cell -> its notebook's path

  constructor(private readonly state: RemoteState) {
    NotebookActions.executionScheduled.connect((_, { notebook, cell }) => {
      const path = (notebook.parent as { context?: { path: string } } | null)?.context?.path;
      if (isRemote(cell) && path) {
        this.running.set(cell, path);
        this.render(cell);
      }
    });
    NotebookActions.executed.connect((_, { cell }) => this.remove(cell));
    state.changed.connect(() => this.running.forEach((_, cell) => this.render(cell)));
  }

  private text(path: string): string {
    const status = this.state.topics.status;
    const host = status?.url ? new URL(status.url).host : 'runner';
    const worker = this.state.busyWorker(path);
    const gpus = this.state.topics.gpus?.gpus ?? [];
    const held = (worker?.gpus ?? []).map(index => gpus.find(gpu => gpu.index === index)?.name ?? `GPU ${index}`);
    const where = held.length ? held.join(', ') : worker ? 'CPU' : 'starting';
    return `remote · ${host} · ${where}`;
  }

  private render(cell: Cell): void {
    const path = this.running.get(cell);
    if (path === undefined || cell.isDisposed) {
      this.running.delete(cell);
      return;
    }
    let badge = cell.node.querySelector(`.${BADGE}`);
    if (!badge) {
      badge = h('div', { class: BADGE, title: 'this cell runs on the nbremote runner' });
      cell.inputArea?.node.append(badge);
      cell.inputArea?.node.classList.add('nbremote-has-badge');
    }
    badge.textContent = this.text(path);
  }

  private remove(cell: Cell): void {
    this.running.delete(cell);
    cell.node.querySelector(`.${BADGE}`)?.remove();
  }
}
