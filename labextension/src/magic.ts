/**
 * The `%%remote` line a promotion runs in the notebook's kernel, and the code that runs it.
 *
 * The cell is promoted by the kernel itself (`run_cell_magic`), so its inputs are the kernel's
 * current variables, exactly as if the user had typed the magic. Every value is checked here and
 * single-quoted for the magic's shell-like parser; the cell's source goes as a Python string
 * literal (JSON's escapes are Python's).
 */

export interface EndpointForm {
  kind: 'endpoint';
  name: string;
  method: string;
  path: string;
  isPublic: boolean;
}

export interface ScheduleForm {
  kind: 'schedule';
  name: string;
  schedule: string;
  tz: string;
}

export type PromoteForm = (EndpointForm | ScheduleForm) & { gpu: string; image: string };

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

function quoted(value: string, what: string): string {
  if (value.includes("'") || /[\r\n]/.test(value)) {
    throw new Error(`${what} cannot hold a quote or a line break: ${value}`);
  }
  return `'${value}'`;
}

/** The flags of `%%remote` for a form, checked (an Error names the bad field). */
export function magicLine(form: PromoteForm): string {
  if (!NAME.test(form.name)) {
    throw new Error(
      `name ${JSON.stringify(form.name)}: letters, digits, '_', '.', '-' (64 at most, not first)`
    );
  }
  const flags: string[] = [];
  if (form.kind === 'endpoint') {
    const method = form.method.toUpperCase();
    if (!METHODS.includes(method)) {
      throw new Error(`method ${form.method}: one of ${METHODS.join(', ')}`);
    }
    const path = form.path.trim() || '/';
    if (!path.startsWith('/') || /\s/.test(path)) {
      throw new Error(`path ${JSON.stringify(path)}: starts with / and has no spaces`);
    }
    flags.push('--endpoint', method, quoted(path, 'the path'), '--name', form.name);
    if (form.isPublic) {
      flags.push('--public');
    }
  } else {
    flags.push('--schedule', quoted(form.schedule.trim(), 'the schedule'), '--name', form.name);
    if (form.tz.trim() && !form.schedule.trim().toLowerCase().startsWith('every')) {
      flags.push('--tz', quoted(form.tz.trim(), 'the time zone'));
    }
  }
  if (form.gpu.trim()) {
    flags.push('--gpu', quoted(form.gpu.trim(), 'the GPU'));
  }
  if (form.image.trim()) {
    flags.push('--image', quoted(form.image.trim(), 'the image'));
  }
  return flags.join(' ');
}

/** A cell's own `%%remote` line taken off: its code, and the GPU and image it asked for. */
export function splitCell(source: string): { code: string; gpu: string; image: string } {
  const lines = source.split('\n');
  if (!lines[0].trimStart().startsWith('%%remote')) {
    return { code: source, gpu: '', image: '' };
  }
  const flag = (name: string): string => {
    const match = new RegExp(`--${name}[ =](?:'([^']*)'|"([^"]*)"|(\\S+))`).exec(lines[0]);
    return match ? (match[1] ?? match[2] ?? match[3]) : '';
  };
  return { code: lines.slice(1).join('\n'), gpu: flag('gpu'), image: flag('image') };
}

/** The Python the kernel runs to promote ``code`` with the flags ``line``. */
export function promoteCode(line: string, code: string): string {
  return [
    "get_ipython().extension_manager.load_extension('nbremote')",
    `get_ipython().run_cell_magic('remote', ${JSON.stringify(line)}, ${JSON.stringify(code)});`
  ].join('\n');
}
