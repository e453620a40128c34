/**
 * The live state of the runner as the panel and the status bar show it: the server extension's
 * events (`/nbremote/api/events`, server-sent), each topic replaced whole when it changes.
 * The browser's EventSource reconnects by itself; while it is away the state says so.
 */

import { ISignal, Signal } from '@lumino/signaling';

import { Session, Topics, TOPICS, Worker } from './api';

export class RemoteState {
  private readonly source: EventSource;
  private readonly changedSignal = new Signal<this, keyof Topics>(this);
  readonly topics: Partial<Topics> = {};

  constructor(url: string) {
    this.source = new EventSource(url, { withCredentials: true });
    for (const topic of TOPICS) {
      this.source.addEventListener(topic, event => {
        this.topics[topic] = JSON.parse((event as MessageEvent).data);
        this.changedSignal.emit(topic);
      });
    }
    this.source.onerror = () => {
      this.topics.status = {
        connected: false,
        url: null,
        runner: null,
        error: 'the Jupyter server does not answer'
      };
      this.changedSignal.emit('status');
    };
  }

  /** A topic changed (its new document is in `topics`). */
  get changed(): ISignal<this, keyof Topics> {
    return this.changedSignal;
  }

  /**
   * The worker state of a notebook's session ('running a cell', 'idle', 'no warm worker'), or
   * null if it has none. A kernel names its session by the notebook's absolute path
   * (JPY_SESSION_NAME), the frontend knows the path under the server's root: it ends so.
   */
  notebookState(path: string | null): string | null {
    const session = this.session(path);
    if (!session) {
      return null;
    }
    if (session.workers.some(worker => worker.busy)) {
      return 'running a cell';
    }
    return session.workers.length ? 'idle' : 'no warm worker';
  }

  /** The session of a notebook (by its path under the server's root), if it has one. */
  session(path: string | null): Session | undefined {
    const mine = (notebook: string | null): boolean =>
      Boolean(path && notebook && (notebook === path || notebook.endsWith(`/${path}`)));
    return this.topics.sessions?.sessions.find(s => mine(s.notebook));
  }

  /** The worker of a notebook that is running a cell now. */
  busyWorker(path: string | null): Worker | undefined {
    return this.session(path)?.workers.find(worker => worker.busy);
  }

  /** GPUs held, and there are. */
  gpusInUse(): [number, number] {
    const gpus = this.topics.gpus?.gpus ?? [];
    return [gpus.filter(gpu => gpu.holder && !gpu.holder.idle).length, gpus.length];
  }

  dispose(): void {
    this.source.close();
  }
}
