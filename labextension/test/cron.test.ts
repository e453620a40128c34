import { describe, expect, it } from 'vitest';

import { describeSchedule } from '../src/cron';

describe('describeSchedule', () => {
  it.each([
    ['0 2 * * *', 'every day at 02:00'],
    ['30 14 * * *', 'every day at 14:30'],
    ['*/15 * * * *', 'every 15 minutes'],
    ['* * * * *', 'every minute'],
    ['0 * * * *', 'every hour, on the hour'],
    ['5 * * * *', 'every hour at minute 5'],
    ['0 */6 * * *', 'every 6 hours at minute 0'],
    ['0 9 * * 1-5', 'every weekday (Monday to Friday) at 09:00'],
    ['0 9 * * mon', 'every Monday at 09:00'],
    ['0 9 * * 1,3', 'every Monday and Wednesday at 09:00'],
    ['0 0 1 * *', 'on day 1 of every month at 00:00'],
    ['0 12 25 12 *', 'every year on 25 December at 12:00'],
    ['@daily', 'every day at 00:00'],
    ['@hourly', 'every hour, on the hour'],
    ['every 10m', 'every 10 minutes'],
    ['every 1h', 'every hour'],
    ["'0 2 * * *'", 'every day at 02:00']
  ])('%s reads "%s"', (spec, text) => {
    expect(describeSchedule(spec)).toEqual({ text });
  });

  it('spells out what has no short wording', () => {
    expect(describeSchedule('0 2 1-7 * 1')).toEqual({
      text: 'at minute 0, hour 2, day of month 1-7, month *, day of week 1'
    });
  });

  it.each([
    ['', 'give a schedule'],
    ['0 2 * *', 'five fields'],
    ['61 * * * *', 'minute 61 is out of range 0-59'],
    ['0 24 * * *', 'hour 24 is out of range 0-23'],
    ['0 0 0 * *', 'day of month 0 is out of range 1-31'],
    ['every ten minutes', 'a period is every N'],
    ['@fortnightly', 'unknown alias']
  ])('%s is refused: %s', (spec, error) => {
    const described = describeSchedule(spec);
    expect('error' in described && described.error).toContain(error);
  });
});
