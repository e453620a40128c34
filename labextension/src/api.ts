/**
 * The extension's one typed client of `/nbremote/api/...` (the jupyter-server extension, which
 * proxies the runner behind Jupyter's login), and the documents it answers: the runner's wire
 * models (nbremote/wire), those fields the UI reads.
 */

export interface RunnerStatus {
  connected: boolean;
  url: string | null;
  error: string | null;
  runner: { version: string; backend: string; sessions: number; workers: number } | null;
}

export interface JobRun {
  number: number;
  status: string;
  trigger: string;
  started: number | null;
  finished: number | null;
  error: string | null;
}

export interface Job {
  name: string;
  schedule: string;
  paused: boolean;
  next_fires: string[];
  gpu: string | null;
  last_run: JobRun | null;
}

export interface Endpoint {
  name: string;
  method: string | null;
  url: string;
  requires_auth: boolean;
  token: string | null;
}

export interface Tried {
  status: number;
  content_type: string;
  body: string;
  truncated: boolean;
}

export interface GpuHolder {
  kind: string;
  notebook: string | null;
  name: string | null;
  idle: boolean;
}

export interface Gpu {
  index: number;
  name: string;
  memory_total_bytes: number | null;
  memory_used_bytes: number | null;
  utilization_percent: number | null;
  holder: GpuHolder | null;
}

export interface Worker {
  id: string;
  started_at: number;
  rss_bytes: number | null;
  busy: boolean;
  cells_run: number;
  gpus: number[];
}

export interface Session {
  id: string;
  notebook: string | null;
  attached: boolean;
  workers: Worker[];
}

export interface Topics {
  status: RunnerStatus;
  jobs: { jobs: Job[] };
  endpoints: { endpoints: Endpoint[] };
  gpus: { source: string; gpus: Gpu[]; unavailable: string | null };
  sessions: { sessions: Session[] };
}

export const TOPICS: (keyof Topics)[] = ['status', 'jobs', 'endpoints', 'gpus', 'sessions'];

/** An error answer of the extension (or the runner behind it): its type and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string
  ) {
    super(message);
  }
}

export type Fetch = (path: string, init: RequestInit) => Promise<Response>;

function segment(name: string): string {
  return encodeURIComponent(name);
}

/** The REST calls of the panel and the dialog, each typed by what it answers. */
export class RemoteApi {
  /**
   * @param fetcher sends a request to a path under the server's base URL (in JupyterLab,
   *   `ServerConnection.makeRequest`, which adds the login and the XSRF token).
   */
  constructor(private readonly fetcher: Fetch) {}

  private async call<T>(path: string, method = 'GET', body: unknown = {}): Promise<T> {
    const init: RequestInit = { method };
    if (method === 'POST') {
      init.body = JSON.stringify(body);
    }
    const response = await this.fetcher(`nbremote/api/${path}`, init);
    if (response.status === 204) {
      return undefined as T;
    }
    const text = await response.text();
    let document: any = null;
    try {
      document = text ? JSON.parse(text) : null;
    } catch {
      document = null;
    }
    if (!response.ok) {
      const error = document?.error;
      throw new ApiError(
        response.status,
        error?.type ?? `HTTP ${response.status}`,
        error?.message ?? document?.message ?? (text.slice(0, 200) || response.statusText)
      );
    }
    return document as T;
  }

  /** A text resource (a log), whole. */
  private async text(path: string): Promise<string> {
    const response = await this.fetcher(`nbremote/api/${path}`, { method: 'GET' });
    const text = await response.text();
    if (!response.ok) {
      let message = text.slice(0, 200);
      try {
        message = JSON.parse(text).error.message;
      } catch {
        // not an error document: its start says what went wrong
      }
      throw new ApiError(response.status, `HTTP ${response.status}`, message);
    }
    return text;
  }

  status(): Promise<RunnerStatus> {
    return this.call('status');
  }

  jobs(): Promise<Topics['jobs']> {
    return this.call('jobs');
  }

  job(name: string): Promise<Job> {
    return this.call(`jobs/${segment(name)}`);
  }

  pauseJob(name: string, paused: boolean): Promise<Job> {
    return this.call(`jobs/${segment(name)}/${paused ? 'pause' : 'resume'}`, 'POST');
  }

  runJob(name: string): Promise<JobRun> {
    return this.call(`jobs/${segment(name)}/runs`, 'POST');
  }

  jobRuns(name: string, limit = 5): Promise<{ runs: JobRun[] }> {
    return this.call(`jobs/${segment(name)}/runs?limit=${limit}`);
  }

  /** What a run printed (``last``: the latest run). */
  jobLog(name: string, run: number | 'last' = 'last'): Promise<string> {
    return this.text(`jobs/${segment(name)}/runs/${run}/logs`);
  }

  /** An endpoint's request log: time, method, path, status, latency, a line each. */
  endpointLog(name: string): Promise<string> {
    return this.text(`endpoints/${segment(name)}/logs`);
  }

  deleteJob(name: string): Promise<void> {
    return this.call(`jobs/${segment(name)}`, 'DELETE');
  }

  endpoint(name: string): Promise<Endpoint> {
    return this.call(`endpoints/${segment(name)}`);
  }

  deleteEndpoint(name: string): Promise<void> {
    return this.call(`endpoints/${segment(name)}`, 'DELETE');
  }

  /** One request to an endpoint, sent by the Jupyter server with the endpoint's token. */
  tryEndpoint(name: string, request: { method: string; path: string; body: unknown }): Promise<Tried> {
    return this.call(`endpoints/${segment(name)}/try`, 'POST', request);
  }

  stopWorkers(sessionId: string): Promise<void> {
    return this.call(`sessions/${segment(sessionId)}/workers`, 'DELETE');
  }

  /** The next three fire times of a schedule (ISO 8601), or an ApiError saying what is wrong. */
  schedulePreview(schedule: string, tz: string): Promise<{ next_fires: string[] }> {
    const query = `schedule=${encodeURIComponent(schedule)}&tz=${encodeURIComponent(tz)}`;
    return this.call(`schedule-preview?${query}`);
  }
}
