/** Time windows of approval rules, across time zones, days and midnight. */
import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { TimeConditionSchema, Weekday } from '../../../proto/src/index.js';
import { localClock, timeHolds } from './approval-rules.js';

const businessHoursNy = create(TimeConditionSchema, {
  windows: [{ days: [Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY], startMinute: 8 * 60, endMinute: 18 * 60, timeZone: 'America/New_York' }],
});

describe('approval time windows', () => {
  it('reads the local weekday and minute in the rule\'s time zone', () => {
    // 2026-11-24 is a Tuesday; 03:00Z is 22:00 on Monday in New York.
    expect(localClock(new Date('2026-11-24T03:00:00Z'), 'America/New_York')).toEqual({ day: Weekday.MONDAY, minute: 22 * 60 });
  });

  it('holds inside a window, or outside all of them with `outside`', () => {
    expect(timeHolds(businessHoursNy, new Date('2026-11-24T15:00:00Z'))).toBe(true);
    expect(timeHolds(businessHoursNy, new Date('2026-11-24T03:00:00Z'))).toBe(false);
    expect(timeHolds(businessHoursNy, new Date('2026-11-28T15:00:00Z'))).toBe(false); // Saturday
    const afterHours = { ...businessHoursNy, outside: true };
    expect(timeHolds(afterHours, new Date('2026-11-24T03:00:00Z'))).toBe(true);
    expect(timeHolds(undefined, new Date())).toBe(true);
  });

  it('runs a window past midnight into the next day', () => {
    const night = create(TimeConditionSchema, { windows: [{ days: [Weekday.FRIDAY], startMinute: 22 * 60, endMinute: 6 * 60, timeZone: 'UTC' }] });
    expect(timeHolds(night, new Date('2026-11-27T23:00:00Z'))).toBe(true); // Friday 23:00
    expect(timeHolds(night, new Date('2026-11-28T05:00:00Z'))).toBe(true); // Saturday 05:00, opened Friday
    expect(timeHolds(night, new Date('2026-11-28T07:00:00Z'))).toBe(false);
    expect(timeHolds(night, new Date('2026-11-26T23:00:00Z'))).toBe(false); // Thursday
  });
});
