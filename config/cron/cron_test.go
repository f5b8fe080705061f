package cron

import (
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04 Mon", s)
	if err != nil {
		panic(err)
	}
	return t
}

// The next firings of a schedule, from a given time: what a user who
// writes it expects to see.
func TestNext(t *testing.T) {
	tests := []struct {
		sched, from string
		want        []string
	}{
		{"0 */12 * * *", "2026-12-06 10:30 Sun", []string{"2026-12-06 12:00 Sun", "2026-12-07 00:00 Mon", "2026-12-07 12:00 Mon"}},
		{"* * * * *", "2026-12-06 10:30 Sun", []string{"2026-12-06 10:31 Sun", "2026-12-06 10:32 Sun"}},
		{"*/15 * * * *", "2026-12-06 10:59 Sun", []string{"2026-12-06 11:00 Sun", "2026-12-06 11:15 Sun"}},
		{"5/20 3 * * *", "2026-12-06 10:00 Sun", []string{"2026-12-07 03:05 Mon", "2026-12-07 03:25 Mon", "2026-12-07 03:45 Mon"}},
		{"30 2 * * mon-fri", "2026-12-04 03:00 Fri", []string{"2026-12-07 02:30 Mon", "2026-12-08 02:30 Tue"}},
		{"0 0 * * 7", "2026-12-06 10:00 Sun", []string{"2026-12-13 00:00 Sun"}},
		{"0 0 1 jan,jul *", "2026-12-06 10:00 Sun", []string{"2027-01-01 00:00 Fri", "2027-07-01 00:00 Thu"}},
		// Both day fields restricted: either one.
		{"0 12 13 * 5", "2026-12-06 10:00 Sun", []string{"2026-12-11 12:00 Fri", "2026-12-13 12:00 Sun", "2026-12-18 12:00 Fri"}},
		{"0 0 29 2 *", "2026-12-06 10:00 Sun", []string{"2028-02-29 00:00 Tue", "2032-02-29 00:00 Sun"}},
		{"0 0 31 * *", "2026-12-06 10:00 Sun", []string{"2026-12-31 00:00 Thu", "2027-01-31 00:00 Sun", "2027-03-31 00:00 Wed"}},
		{"@daily", "2026-12-06 10:00 Sun", []string{"2026-12-07 00:00 Mon"}},
		{"@hourly", "2026-12-06 10:00 Sun", []string{"2026-12-06 11:00 Sun"}},
		{"  0   6  * *   *  ", "2026-12-06 10:00 Sun", []string{"2026-12-07 06:00 Mon"}},
	}
	for _, tt := range tests {
		s, err := Parse(tt.sched)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.sched, err)
			continue
		}
		from := at(tt.from)
		for _, w := range tt.want {
			next, ok := s.Next(from)
			if !ok || next.Format("2006-01-02 15:04 Mon") != w {
				t.Errorf("%q after %s: %s %v; want %s", tt.sched, from.Format("2006-01-02 15:04 Mon"), next.Format("2006-01-02 15:04 Mon"), ok, w)
				break
			}
			from = next
		}
	}
}

// Schedules cairn refuses, each with a message that names the field and
// what it takes.
func TestParseErrors(t *testing.T) {
	tests := []struct{ sched, want string }{
		{"", `is empty; write five fields`},
		{"0 */12 * *", `has 4 fields; write five: minute hour day-of-month month day-of-week`},
		{"0 0 */12 * * *", `has 6 fields; cron takes five`},
		{"60 * * * *", `the minute field "60" is not a number from 0 to 59`},
		{"0 24 * * *", `the hour field "24" is not a number from 0 to 23`},
		{"0 0 0 * *", `the day-of-month field "0" is not a number from 1 to 31`},
		{"0 0 * 13 *", `the month field "13" is not a number from 1 to 12, or a name (jan-dec)`},
		{"0 0 * * 8", `the day-of-week field "8" is not a number from 0 to 7, or a name (sun-sat)`},
		{"0 0 * * mon-funday", `the day-of-week field "mon-funday": "funday" is not a number`},
		{"0 */0 * * *", `the hour field "*/0" has step "0"; a step is a number from 1 to 24`},
		{"0 5-1 * * *", `the hour field "5-1" is a range that ends before it starts`},
		{"0 1,,2 * * *", `the hour field has an empty item in ""`},
		{"0 0 30 2 *", `never fires: no month has that day`},
		{"0 0 31 4,6,9,11 *", `never fires`},
		{"@reboot", `"@reboot" is not one of @yearly, @monthly, @weekly, @daily, @hourly`},
		{strings.Repeat("1,", 200) + "1 * * * *", `is 409 characters long; a schedule is at most 256`},
		{strings.Repeat("1,", 100) + "1 * * * *", `the minute field has 101 items; at most 64`},
	}
	for _, tt := range tests {
		_, err := Parse(tt.sched)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q): %v; want %q", tt.sched, err, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0 */12 * * *", "*/5 1-3,7 1,15 jan-jun/2 mon-fri", "@weekly", "0 0 29 2 *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := Parse(s)
		if err != nil {
			return
		}
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		next, ok := sc.Next(from)
		if !ok || !next.After(from) {
			t.Errorf("%q parses but Next(%s) = %s, %v", s, from, next, ok)
		}
	})
}
