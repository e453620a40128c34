import { describe, expect, it } from 'vitest';

import { magicLine, promoteCode, splitCell } from '../src/magic';

const none = { gpu: '', image: '' };

describe('magicLine', () => {
  it('makes an endpoint line', () => {
    const form = { kind: 'endpoint', name: 'hello', method: 'post', path: '/hi', isPublic: false, ...none } as const;
    expect(magicLine(form)).toBe("--endpoint POST '/hi' --name hello");
  });

  it('makes a public endpoint on a GPU with an image', () => {
    const form = { kind: 'endpoint', name: 'h', method: 'GET', path: '', isPublic: true, gpu: 'A100', image: 'torch' } as const;
    expect(magicLine(form)).toBe("--endpoint GET '/' --name h --public --gpu 'A100' --image 'torch'");
  });

  it('makes a schedule line with its zone', () => {
    const form = { kind: 'schedule', name: 'nightly', schedule: ' 0 2 * * * ', tz: 'Europe/Berlin', ...none } as const;
    expect(magicLine(form)).toBe("--schedule '0 2 * * *' --name nightly --tz 'Europe/Berlin'");
  });

  it('gives a period no zone (the magic refuses one)', () => {
    const form = { kind: 'schedule', name: 'p', schedule: 'every 10m', tz: 'UTC', ...none } as const;
    expect(magicLine(form)).toBe("--schedule 'every 10m' --name p");
  });

  it.each([
    [{ name: 'bad name' }, 'name "bad name"'],
    [{ name: '-x' }, 'name "-x"'],
    [{ method: 'FETCH' }, 'method FETCH'],
    [{ path: 'no-slash' }, 'path "no-slash"'],
    [{ gpu: "A100' --x '" }, 'the GPU cannot hold a quote']
  ])('refuses %o', (change, error) => {
    const form = { kind: 'endpoint', name: 'ok', method: 'POST', path: '/', isPublic: false, ...none, ...change } as const;
    expect(() => magicLine(form as any)).toThrow(error);
  });
});

describe('splitCell', () => {
  it('takes the cell magic off, keeping its GPU and image', () => {
    expect(splitCell("%%remote --gpu 'H100:2' --image=torch\nx = 1\ny = 2")).toEqual({
      code: 'x = 1\ny = 2',
      gpu: 'H100:2',
      image: 'torch'
    });
  });

  it('leaves a plain cell as it is', () => {
    expect(splitCell('print(1)')).toEqual({ code: 'print(1)', gpu: '', image: '' });
  });
});

describe('promoteCode', () => {
  it('passes the cell as a Python string literal', () => {
    const code = promoteCode("--schedule '@daily' --name x", 'print("a\\nb")\n');
    expect(code).toContain(`run_cell_magic('remote', "--schedule '@daily' --name x", "print(\\"a\\\\nb\\")\\n");`);
  });
});
