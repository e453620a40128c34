/** The status-bar item: runner connected or not, this notebook's worker, GPUs in use. */

import { Widget } from '@lumino/widgets';

import { RemoteState } from './state';

export class RemoteStatus extends Widget {
  constructor(
    private readonly state: RemoteState,
    private readonly notebookPath: () => string | null,
    onClick: () => void
  ) {
    super();
    this.addClass('nbremote-status');
    this.node.title = 'nbremote: click to open the Remote panel';
    this.node.addEventListener('click', onClick);
    state.changed.connect(() => this.render());
    this.render();
  }

  render(): void {
    const status = this.state.topics.status;
    if (!status) {
      this.node.textContent = 'Remote: …';
      return;
    }
    if (!status.connected) {
      this.node.textContent = 'Remote: no runner';
      this.node.dataset.state = 'disconnected';
      this.node.title = status.error ?? '';
      return;
    }
    const parts = ['Remote: connected'];
    const mine = this.state.notebookState(this.notebookPath());
    if (mine) {
      parts.push(mine);
    }
    const [used, total] = this.state.gpusInUse();
    if (total) {
      parts.push(`GPUs ${used}/${total}`);
    }
    this.node.textContent = parts.join(' · ');
    this.node.dataset.state = mine === 'running a cell' ? 'running' : 'connected';
    this.node.title = `nbremote runner at ${status.url} (click for the Remote panel)`;
  }
}
