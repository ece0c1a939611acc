package pebble

// waiter is a Notify callback waiting for op seq.
type waiter struct {
	seq   uint64
	order uint64 // registration order, to keep callbacks of one seq in order
	fn    func(error)
	err   error
}

// waitQueue is a min-heap of waiters by (seq, order).
type waitQueue struct {
	h    []waiter
	next uint64
}

func (q *waitQueue) Len() int { return len(q.h) }

func (q *waitQueue) min() *waiter { return &q.h[0] }

func (q *waitQueue) less(i, j int) bool {
	a, b := &q.h[i], &q.h[j]
	return a.seq < b.seq || a.seq == b.seq && a.order < b.order
}

func (q *waitQueue) push(w waiter) {
	w.order = q.next
	q.next++
	q.h = append(q.h, w)
	for i := len(q.h) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *waitQueue) pop() waiter {
	w := q.h[0]
	n := len(q.h) - 1
	q.h[0] = q.h[n]
	q.h[n] = waiter{}
	q.h = q.h[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && q.less(l, m) {
			m = l
		}
		if r := l + 1; r < n && q.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return w
}
