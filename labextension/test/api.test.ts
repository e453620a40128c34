import { describe, expect, it } from 'vitest';

import { ApiError, RemoteApi } from '../src/api';

function fake(status: number, body: unknown) {
  const calls: { path: string; init: RequestInit }[] = [];
  const api = new RemoteApi(async (path, init) => {
    calls.push({ path, init });
    const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    return new Response(status === 204 ? null : text, { status });
  });
  return { api, calls };
}

describe('RemoteApi', () => {
  it('reads a typed answer', async () => {
    const { api, calls } = fake(200, { name: 'nightly', paused: true });
    const job = await api.pauseJob('nightly', true);
    expect(job.paused).toBe(true);
    expect(calls[0].path).toBe('nbremote/api/jobs/nightly/pause');
    expect(calls[0].init.method).toBe('POST');
  });

  it('quotes a name as one path segment', async () => {
    const { api, calls } = fake(204, undefined);
    await api.deleteEndpoint('app/fn');
    expect(calls[0].path).toBe('nbremote/api/endpoints/app%2Ffn');
  });

  it('turns an error document into an ApiError with its message', async () => {
    const { api } = fake(422, { error: { type: 'ValidationError', message: 'minute 61 is out of range' } });
    const failure = api.schedulePreview('61 * * * *', 'UTC');
    await expect(failure).rejects.toBeInstanceOf(ApiError);
    await expect(failure).rejects.toMatchObject({ status: 422, type: 'ValidationError', message: 'minute 61 is out of range' });
  });

  it('says what a non-JSON failure answered', async () => {
    const { api } = fake(502, 'Bad Gateway from a proxy');
    await expect(api.status()).rejects.toMatchObject({ status: 502, message: 'Bad Gateway from a proxy' });
  });

  it('sends the preview query quoted', async () => {
    const { api, calls } = fake(200, { next_fires: [] });
    await api.schedulePreview('0 2 * * *', 'Europe/Berlin');
    expect(calls[0].path).toBe('nbremote/api/schedule-preview?schedule=0%202%20*%20*%20*&tz=Europe%2FBerlin');
  });
});

import { fireTime, shortPath } from '../src/dom';

describe('how times and paths read', () => {
  it.each([
    ['2026-12-02T03:00:00+00:00', '2026-12-02 03:00 +00:00'],
    ['2026-12-02T03:00:30+01:00', '2026-12-02 03:00 +01:00'],
    ['2026-12-02T03:00:00Z', '2026-12-02 03:00 UTC'],
    ['not a time', 'not a time']
  ])('%s reads %s', (iso, text) => {
    expect(fireTime(iso)).toBe(text);
  });

  it('keeps the last two parts of a path', () => {
    expect(shortPath('/home/ada/work/walk.ipynb')).toBe('work/walk.ipynb');
    expect(shortPath('walk.ipynb')).toBe('walk.ipynb');
  });
});

describe('logs', () => {
  it('reads a log as text', async () => {
    const { api, calls } = fake(200, '12:00:01 POST /answer 200 3.1 ms\n');
    expect(await api.endpointLog('lab-answer')).toContain('POST /answer 200');
    expect(calls[0].path).toBe('nbremote/api/endpoints/lab-answer/logs');
  });

  it('says why a log cannot be read', async () => {
    const { api } = fake(404, { error: { type: 'NotFound', message: "job 'x' has no run last" } });
    await expect(api.jobLog('x')).rejects.toMatchObject({ status: 404, message: "job 'x' has no run last" });
  });
});

describe('tryEndpoint', () => {
  it('posts what to send and reads what came back', async () => {
    const { api, calls } = fake(200, { status: 200, content_type: 'application/json', body: '{"a":1}', truncated: false });
    const tried = await api.tryEndpoint('hello', { method: 'POST', path: '/hi', body: { q: 1 } });
    expect(tried.status).toBe(200);
    expect(calls[0].path).toBe('nbremote/api/endpoints/hello/try');
    expect(JSON.parse(calls[0].init.body as string)).toEqual({ method: 'POST', path: '/hi', body: { q: 1 } });
  });
});
