package dceoverlay

// client-go's work queue, and the file with the period of its
// unfinished-work loop.
const (
	workqueuePkg  = "k8s.io/client-go/util/workqueue"
	workqueueFile = "util/workqueue/queue.go"
)

// workqueuePeriod is upstream's declaration of the period, and
// WorkqueuePeriod's replacement.
const (
	workqueuePeriod      = "const defaultUnfinishedWorkUpdatePeriod = 500 * time.Millisecond"
	workqueuePeriodCairn = "const defaultUnfinishedWorkUpdatePeriod = 10 * time.Second"
)

// WorkqueuePeriod returns client-go's util/workqueue/queue.go (src, read
// from file) with the period of a queue's unfinished-work loop raised from
// 500 ms to 10 s.
//
// Every named work queue of a process that exports work-queue metrics (all
// of Kubernetes' components do) runs a goroutine with a ticker of that
// period, only to refresh two gauges: workqueue_unfinished_work_seconds
// and workqueue_longest_running_processor_seconds. kube-controller-manager
// has dozens of queues, and at rest those tickers are most of what wakes it
// and the scheduler (docs/performance.md "A profile of an idle server").
// At 10 s, the delaying queues' own heartbeat, the gauges lag the work by
// up to 10 s; every other metric is as before.
func WorkqueuePeriod(file string, src []byte) ([]byte, error) {
	return replaceOnce(file, "client-go", src, replacement{workqueuePeriod,
		"// Raised from 500 ms by cairn's internal/dceoverlay: one wake-up per queue\n// every 10 s at rest instead of two a second.\n" + workqueuePeriodCairn})
}
