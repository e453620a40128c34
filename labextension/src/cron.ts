/**
 * A schedule in plain words, for the Promote dialog's preview: "every day at 02:00".
 *
 * Only the wording lives here; whether a schedule is valid, and when it fires, the server says
 * (`/nbremote/api/schedule-preview`, the same parser as `%%remote --schedule`). Forms that have
 * no short wording fall back to the fields spelled out.
 */

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const MONTHS = [
  'January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September',
  'October', 'November', 'December'
];
const ALIASES: Record<string, string> = {
  '@yearly': 'every year on 1 January at 00:00',
  '@annually': 'every year on 1 January at 00:00',
  '@monthly': 'on day 1 of every month at 00:00',
  '@weekly': 'every Sunday at 00:00',
  '@daily': 'every day at 00:00',
  '@midnight': 'every day at 00:00',
  '@hourly': 'every hour, on the hour'
};
const UNITS: Record<string, [string, string]> = {
  s: ['second', 'seconds'],
  m: ['minute', 'minutes'],
  h: ['hour', 'hours'],
  d: ['day', 'days']
};

const NUMBER = /^\d+$/;

function pad(value: string): string {
  return value.padStart(2, '0');
}

function plural(count: string, unit: [string, string]): string {
  return count === '1' ? `every ${unit[0]}` : `every ${count} ${unit[1]}`;
}

function dayName(field: string): string | null {
  const index = NUMBER.test(field) ? Number(field) % 7 : DAY_NAMES.indexOf(field.toLowerCase());
  return index >= 0 && index < 7 ? DAYS[index] : null;
}

function days(field: string): string | null {
  const lower = field.toLowerCase();
  if (lower === '1-5' || lower === 'mon-fri') {
    return 'every weekday (Monday to Friday)';
  }
  if (lower === '0,6' || lower === '6,0' || lower === 'sat,sun' || lower === 'sun,sat') {
    return 'every Saturday and Sunday';
  }
  const names = lower.split(',').map(dayName);
  if (names.some(name => name === null)) {
    return null;
  }
  return `every ${names.join(', ').replace(/, ([^,]*)$/, ' and $1')}`;
}

function atTime(minute: string, hour: string): string | null {
  if (NUMBER.test(minute) && NUMBER.test(hour)) {
    return `${pad(hour)}:${pad(minute)}`;
  }
  return null;
}

/** Checks the five fields' ranges (numbers only; names and steps are the server's to judge). */
function rangeError(fields: string[]): string | null {
  const limits: [string, number, number][] = [
    ['minute', 0, 59],
    ['hour', 0, 23],
    ['day of month', 1, 31],
    ['month', 1, 12],
    ['day of week', 0, 7]
  ];
  for (let i = 0; i < 5; i++) {
    const [name, low, high] = limits[i];
    for (const part of fields[i].split(/[,\-/]/)) {
      if (NUMBER.test(part) && !fields[i].includes('/' + part)) {
        const value = Number(part);
        if (value < low || value > high) {
          return `${name} ${value} is out of range ${low}-${high}`;
        }
      }
    }
  }
  return null;
}

export type Described = { text: string } | { error: string };

/**
 * A schedule of `%%remote --schedule` in words: a cron (five fields), an alias (@daily) or a
 * period ("every 10m").
 *
 * Example: describeSchedule('0 2 * * *') gives { text: 'every day at 02:00' }.
 */
export function describeSchedule(spec: string): Described {
  const text = spec.trim().replace(/^['"]|['"]$/g, '').trim();
  if (!text) {
    return { error: 'give a schedule: a cron such as 0 2 * * *, @daily, or every 10m' };
  }
  const lower = text.toLowerCase();
  if (lower.startsWith('every')) {
    const match = /^every\s+(\d+(?:\.\d+)?)\s*([smhd])$/.exec(lower);
    if (!match) {
      return { error: `a period is every N with s, m, h or d: every 30s, every 10m, every 2h` };
    }
    return { text: plural(match[1], UNITS[match[2]]) };
  }
  if (lower.startsWith('@')) {
    const alias = ALIASES[lower];
    return alias ? { text: alias } : { error: `unknown alias ${text}: @hourly, @daily, @weekly, @monthly or @yearly` };
  }
  const fields = text.split(/\s+/);
  if (fields.length !== 5) {
    return {
      error: `a cron has five fields (minute hour day-of-month month day-of-week), not ${fields.length}`
    };
  }
  const error = rangeError(fields);
  if (error) {
    return { error };
  }
  return { text: describeFields(fields) };
}

function describeFields(fields: string[]): string {
  const [minute, hour, dom, month, dow] = fields;
  const time = atTime(minute, hour);
  const everyDay = dom === '*' && month === '*';
  if (fields.every(field => field === '*')) {
    return 'every minute';
  }
  const step = /^\*\/(\d+)$/;
  if (step.test(minute) && hour === '*' && everyDay && dow === '*') {
    return plural(step.exec(minute)![1], UNITS.m);
  }
  if (NUMBER.test(minute) && hour === '*' && everyDay && dow === '*') {
    return minute === '0' ? 'every hour, on the hour' : `every hour at minute ${Number(minute)}`;
  }
  if (NUMBER.test(minute) && step.test(hour) && everyDay && dow === '*') {
    return `${plural(step.exec(hour)![1], UNITS.h)} at minute ${Number(minute)}`;
  }
  if (time && everyDay && dow === '*') {
    return `every day at ${time}`;
  }
  if (time && everyDay) {
    const which = days(dow);
    if (which) {
      return `${which} at ${time}`;
    }
  }
  if (time && NUMBER.test(dom) && dow === '*') {
    if (month === '*') {
      return `on day ${Number(dom)} of every month at ${time}`;
    }
    if (NUMBER.test(month)) {
      return `every year on ${Number(dom)} ${MONTHS[Number(month) - 1]} at ${time}`;
    }
  }
  return `at minute ${minute}, hour ${hour}, day of month ${dom}, month ${month}, day of week ${dow}`;
}
