// Package cron reads the five-field schedules of cron(8), as k3s's
// etcd-snapshot-schedule-cron takes them ("0 */12 * * *"), and says when
// one fires next. Times are UTC.
package cron

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxLen bounds a schedule's text.
const MaxLen = 256

// maxItems bounds the comma-separated items of one field.
const maxItems = 64

// Schedule is a parsed schedule: the minutes, hours, days of the month,
// months and days of the week it fires at, one bit each.
type Schedule struct {
	minute, hour, dom, month, dow uint64
	// domAny and dowAny say the field was "*" (or "?"): with both day
	// fields restricted, either matching is enough, as cron(8) does.
	domAny, dowAny bool
	text           string
}

// field is one of the five fields: its name for messages, its range and
// the names it takes.
type field struct {
	name     string
	min, max int
	names    []string // names[i] is the value min+i
}

var fields = []field{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day-of-month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: strings.Fields("jan feb mar apr may jun jul aug sep oct nov dec")},
	// 7 is Sunday too, as cron(8) reads it.
	{name: "day-of-week", min: 0, max: 7, names: strings.Fields("sun mon tue wed thu fri sat")},
}

// descriptors are the @ shorthands k3s's cron library knows.
var descriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// horizon is how far ahead Next looks: a schedule that fires at all fires
// within eight years (February 29th of a leap year, skipping 2100).
const horizon = 9 * 366 * 24 * time.Hour

// Parse reads a schedule: five fields (minute, hour, day of the month,
// month, day of the week), each "*", a number, a range "A-B", a list
// "A,B", and any of them with a step "/N"; months and days of the week
// also by name (jan, mon). The @ shorthands (@daily, @hourly...) work too.
// A schedule that never fires (February 30th) is an error.
func Parse(s string) (*Schedule, error) {
	if len(s) > MaxLen {
		return nil, fmt.Errorf("is %d characters long; a schedule is at most %d", len(s), MaxLen)
	}
	text := strings.TrimSpace(s)
	if strings.HasPrefix(text, "@") {
		d, ok := descriptors[strings.ToLower(text)]
		if !ok {
			return nil, fmt.Errorf("%q is not one of @yearly, @monthly, @weekly, @daily, @hourly; write five fields like \"0 */12 * * *\"", text)
		}
		text = d
	}
	parts := strings.Fields(text)
	switch {
	case len(parts) == 0:
		return nil, errors.New("is empty; write five fields: minute hour day-of-month month day-of-week, like \"0 */12 * * *\"")
	case len(parts) == 6:
		return nil, fmt.Errorf("has 6 fields; cron takes five (minute hour day-of-month month day-of-week), without seconds")
	case len(parts) != 5:
		return nil, fmt.Errorf("has %d fields; write five: minute hour day-of-month month day-of-week, like \"0 */12 * * *\"", len(parts))
	}
	sc := &Schedule{text: strings.Join(parts, " ")}
	dst := []*uint64{&sc.minute, &sc.hour, &sc.dom, &sc.month, &sc.dow}
	for i, p := range parts {
		bits, err := fields[i].parse(p)
		if err != nil {
			return nil, err
		}
		*dst[i] = bits
	}
	sc.domAny, sc.dowAny = isAny(parts[2]), isAny(parts[4])
	if sc.dow&(1<<7) != 0 {
		sc.dow |= 1 // 7 is Sunday
	}
	if _, ok := sc.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)); !ok {
		return nil, errors.New("never fires: no month has that day")
	}
	return sc, nil
}

func isAny(p string) bool { return p == "*" || p == "?" || p == "*/1" }

// String is the schedule as its five fields.
func (s *Schedule) String() string { return s.text }

// parse reads one field into a bit set of the values it names.
func (f field) parse(p string) (uint64, error) {
	items := strings.Split(p, ",")
	if len(items) > maxItems {
		return 0, fmt.Errorf("the %s field has %d items; at most %d", f.name, len(items), maxItems)
	}
	var bits uint64
	for _, item := range items {
		b, err := f.item(item)
		if err != nil {
			return 0, err
		}
		bits |= b
	}
	return bits, nil
}

// item reads "*", "N", "A-B", each with an optional "/STEP".
func (f field) item(item string) (uint64, error) {
	rng, stepText, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || n < 1 || n > f.max-f.min+1 {
			return 0, fmt.Errorf("the %s field %q has step %q; a step is a number from 1 to %d", f.name, item, stepText, f.max-f.min+1)
		}
		step = n
	}
	var lo, hi int
	switch {
	case rng == "*" || rng == "?":
		lo, hi = f.min, f.max
	case rng == "":
		return 0, fmt.Errorf("the %s field has an empty item in %q", f.name, item)
	default:
		a, b, isRange := strings.Cut(rng, "-")
		var err error
		if lo, err = f.value(a, item); err != nil {
			return 0, err
		}
		hi = lo
		if isRange {
			if hi, err = f.value(b, item); err != nil {
				return 0, err
			}
			if hi < lo {
				return 0, fmt.Errorf("the %s field %q is a range that ends before it starts", f.name, item)
			}
		} else if hasStep {
			hi = f.max // "5/15" is 5, 20, 35, 50, as cron(8) reads it
		}
	}
	var bits uint64
	for v := lo; v <= hi; v += step {
		bits |= 1 << v
	}
	return bits, nil
}

// value reads one number or name of the field.
func (f field) value(s, item string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max {
		names := ""
		if len(f.names) > 0 {
			names = fmt.Sprintf(", or a name (%s-%s)", f.names[0], f.names[len(f.names)-1])
		}
		if s == item {
			return 0, fmt.Errorf("the %s field %q is not a number from %d to %d%s", f.name, s, f.min, f.max, names)
		}
		return 0, fmt.Errorf("the %s field %q: %q is not a number from %d to %d%s", f.name, item, s, f.min, f.max, names)
	}
	return n, nil
}

// Next is the first time after t (in UTC, to the minute) the schedule
// fires; false when it does not within eight years.
func (s *Schedule) Next(t time.Time) (time.Time, bool) {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	end := t.Add(horizon)
	for t.Before(end) {
		switch {
		case s.month&(1<<int(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case s.hour&(1<<t.Hour()) == 0:
			t = t.Truncate(time.Hour).Add(time.Hour)
		case s.minute&(1<<t.Minute()) == 0:
			t = t.Add(time.Minute)
		default:
			return t, true
		}
	}
	return time.Time{}, false
}

// dayMatches applies cron(8)'s rule for the two day fields: when both are
// restricted, a day matching either fires.
func (s *Schedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<t.Day()) != 0
	dow := s.dow&(1<<int(t.Weekday())) != 0
	if !s.domAny && !s.dowAny {
		return dom || dow
	}
	return dom && dow
}
