/** A small DOM builder for the panel and the dialog (text always goes in as text, never HTML). */

type Child = Node | string | null | undefined | false;

export function h(
  tag: string,
  attrs: Record<string, string | boolean | ((event: Event) => void)> = {},
  ...children: Child[]
): HTMLElement {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (typeof value === 'function') {
      element.addEventListener(key.replace(/^on/, '').toLowerCase(), value);
    } else if (value === true) {
      element.setAttribute(key, '');
    } else if (value !== false) {
      element.setAttribute(key, value);
    }
  }
  for (const child of children) {
    if (child) {
      element.append(child);
    }
  }
  return element;
}

/** A button that copies ``text`` to the clipboard and says so. */
export function copyButton(text: string, label = 'Copy'): HTMLElement {
  const button = h('button', { class: 'jp-mod-styled nbremote-copy', title: `${label}` }, label);
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Select and copy';
    }
  });
  return button;
}

export function bytes(value: number | null): string {
  if (value === null) {
    return '?';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit++;
  }
  return `${size.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function when(seconds: number | null): string {
  return seconds === null ? '' : new Date(seconds * 1000).toLocaleString();
}

/** A fire time as the runner gives it (ISO 8601, the job's zone) for people: 2026-03-03 02:00 +01:00. */
export function fireTime(iso: string): string {
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::00)?(?::\d{2})?(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?$/.exec(iso);
  return match ? `${match[1]} ${match[2]}${match[3] ? ` ${match[3] === 'Z' ? 'UTC' : match[3]}` : ''}` : iso;
}

/** A notebook's path (a kernel gives the absolute one) as its last two parts. */
export function shortPath(path: string): string {
  return path.split('/').slice(-2).join('/');
}
