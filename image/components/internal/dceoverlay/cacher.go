package dceoverlay

// The apiserver's watch cache, and the file of its bookmark loop.
const (
	cacherPkg  = "k8s.io/apiserver/pkg/storage/cacher"
	cacherFile = "pkg/storage/cacher/cacher.go"
)

// cacherEdits are CacherBookmarks' replacements in cacher.go: each upstream
// text must occur once.
var cacherEdits = []replacement{
	// The bucket set learns which bucket the dispatcher's timer is armed
	// for, and gets a channel to wake the dispatcher for an earlier one.
	{
		"\tclock             clock.Clock\n\tbookmarkFrequency time.Duration\n}\n",
		"\tclock             clock.Clock\n\tbookmarkFrequency time.Duration\n\n" +
			"\t// cairn: the bucket the dispatcher's timer is armed for (under the\n" +
			"\t// cacher's lock), and its wake-up for a watcher due earlier.\n" +
			"\tarmed int64\n\twake  chan struct{}\n}\n",
	},
	{
		"\t\tbookmarkFrequency: bookmarkFrequency,\n\t}\n",
		"\t\tbookmarkFrequency: bookmarkFrequency,\n\t\tarmed:             1<<63 - 1,\n\t\twake:              make(chan struct{}, 1),\n\t}\n",
	},
	{
		"\tt.watchersBuckets[bucketID] = append(watchers, w)\n\treturn true\n}\n",
		"\tt.watchersBuckets[bucketID] = append(watchers, w)\n" +
			"\tif bucketID < t.armed { // cairn: due before the dispatcher's timer\n" +
			"\t\tt.armed = bucketID\n" +
			"\t\tselect {\n\t\tcase t.wake <- struct{}{}:\n\t\tdefault:\n\t\t}\n\t}\n" +
			"\treturn true\n}\n",
	},
	// The loop sleeps until the earliest bucket is due instead of ticking
	// every second.
	{
		"\t\tcase <-bookmarkTimer.C():\n\t\t\tbookmarkTimer.Reset(wait.Jitter(time.Second, 0.25))\n",
		"\t\tcase <-c.bookmarkWatchers.wake: // cairn\n" +
			"\t\t\tbookmarkTimer.Stop()\n" +
			"\t\t\tbookmarkTimer.Reset(c.nextBookmark(false))\n" +
			"\t\tcase <-bookmarkTimer.C():\n" +
			"\t\t\tbookmarkTimer.Reset(c.nextBookmark(true)) // cairn\n",
	},
}

// cacherNext is appended to cacher.go: the dispatcher's next wake-up.
const cacherNext = `
// Added by cairn's internal/dceoverlay (CacherBookmarks).

// minBookmarkDelay keeps the dispatcher from spinning on a bucket that is
// due: one pass pops every due bucket.
const minBookmarkDelay = 10 * time.Millisecond

// nextBookmark arms the dispatcher's bookmark timer: it returns how long to
// sleep. popping says the timer has just fired and the buckets due now are
// about to be popped (their watchers requeued, each waking the dispatcher
// if it is due earlier than the time returned).
func (c *Cacher) nextBookmark(popping bool) time.Duration {
	c.Lock()
	defer c.Unlock()
	return c.bookmarkWatchers.nextThreadUnsafe(popping)
}

// nextThreadUnsafe returns how long until the earliest bucket is due, at
// most bookmarkFrequency, and arms t for it: a watcher added to an earlier
// bucket wakes the dispatcher. With popping, the buckets due now are left
// out.
func (t *watcherBookmarkTimeBuckets) nextThreadUnsafe(popping bool) time.Duration {
	now := t.clock.Now()
	current := int64(now.Sub(t.createTime) / time.Second)
	next := int64(now.Add(t.bookmarkFrequency).Sub(t.createTime) / time.Second)
	for id := range t.watchersBuckets {
		if id < next && (!popping || id > current) {
			next = id
		}
	}
	t.armed = next
	return max(t.createTime.Add(time.Duration(next)*time.Second).Sub(now), minBookmarkDelay)
}
`

// CacherBookmarks returns the apiserver's pkg/storage/cacher/cacher.go (src,
// read from file) with a watch cache's bookmark loop sleeping until a
// watcher is due for a bookmark, instead of waking every second.
//
// Each cached resource (58 on an idle server) runs that loop, whose timer
// fires every 1 to 1.25 s only to hand bookmarks to the watchers whose time
// has come: about once a minute each, 2 s before its deadline, and at once
// when a watch that asked for its initial events has had them. At rest
// nearly every tick finds nobody due, and the ticks were about half of what
// wakes an idle apiserver (docs/performance.md). Here the timer is armed for
// the earliest due watcher, and a watcher added for an earlier time wakes
// the loop; a bookmark is handed out when it is due rather than at the next
// tick, so never later than upstream's.
func CacherBookmarks(file string, src []byte) ([]byte, error) {
	out, err := replaceOnce(file, "apiserver", src, cacherEdits...)
	if err != nil {
		return nil, err
	}
	return append(out, cacherNext...), nil
}
