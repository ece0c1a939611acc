package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/packet"
)

// benchFlags are the flags of vigil bench conn, pub and sub: emqtt-bench's
// and MQTTX bench's names.
type benchFlags struct {
	conn        connFlags
	count       int
	interval    int // ms between connection starts
	connRate    float64
	startNumber int
	concurrency int
	duration    time.Duration
	json        bool
	noProgress  bool

	// pub and sub
	topics []string
	qos    int
	// pub
	pubTopic    string
	size        int
	retain      bool
	msgInterval int // ms
	rate        float64
	limit       int
	inflight    int
	waitAll     bool
	// sub
	idleTimeout time.Duration
}

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load a broker with many clients: connections, publishers, subscribers",
		Long: `Generate load like emqtt-bench and MQTTX bench, with their flag names:
many clients (-c), started at an interval (-i ms) or rate (-R per second),
publishing at a message interval (-I ms) or rate (--rate per second) per
client, on topics with %i (client index) and %c (client id).

Live progress goes to stderr once a second; the summary (throughput and
HdrHistogram latency percentiles) to stdout at the end, as text or --json.
bench pub stamps every payload with its send time, so bench sub, run at the
same time on the same machine, reports the end-to-end latency. bench conn
reports the connect latency (dial to CONNACK).`,
		Example: `  vigil bench conn -c 5000 -i 1
  vigil bench sub -c 10 -t 'bench/%i' -q 1 --duration 40s &
  vigil bench pub -c 10 -I 10 -t 'bench/%i' -q 1 -s 256 --duration 30s
  vigil bench pub -c 100 --rate 50 -t 'sensors/%c' -L 1000 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New("bench: choose conn, pub or sub (vigil bench --help)")
		},
	}
	cmd.AddCommand(newBenchSubCmd("conn"), newBenchSubCmd("pub"), newBenchSubCmd("sub"))
	return cmd
}

func newBenchSubCmd(mode string) *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{Use: mode, Args: noArgs}
	switch mode {
	case "conn":
		cmd.Short = "Open many connections and measure the connect latency"
		cmd.Long = `Open -c connections, started -i milliseconds apart (or -R per second), and
report how many connected, the connect rate and the connect latency (dial to
CONNACK) percentiles. Without --duration it stops once every client has
connected or failed; with it, the connections are held until then (losses
are counted). Mind the file descriptor limit (ulimit -n): one per client.`
		cmd.Example = `  vigil bench conn -h 127.0.0.1 -c 5000 -i 1
  vigil bench conn -c 1000 -R 500 --duration 60s -k 30 --json`
	case "pub":
		cmd.Short = "Publish from many clients at a fixed rate"
		cmd.Long = `Connect -c publishers; each publishes to its topic (-t, with %i and %c) every
-I milliseconds (or --rate times per second), -L messages or for --duration.
Payloads are -s bytes and carry their send time for bench sub's latency. For
QoS 1 and 2 a message counts as sent when acknowledged, and the latency
reported is publish to acknowledgement.`
		cmd.Example = `  vigil bench pub -c 10 -I 10 -t 'bench/%i' -q 1 --duration 30s
  vigil bench pub -c 1 --rate 10 -t fanout -L 300 -w
  vigil bench pub -c 100 -im 1000 -t 'sensors/%c/temp' -s 64   # MQTTX's -im`
	case "sub":
		cmd.Short = "Subscribe many clients and measure throughput and end-to-end latency"
		cmd.Long = `Connect -c subscribers to the topics (-t, with %i and %c) and count what
arrives: rate, and the end-to-end latency of bench pub's messages. It stops
after --duration, when every client received -L messages, after
--idle-timeout without messages (once some came), or on Ctrl+C.`
		cmd.Example = `  vigil bench sub -c 10 -t 'bench/%i' -q 1 --duration 40s
  vigil bench sub -c 1000 -t fanout -L 300 --idle-timeout 5s --json`
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return runBench(cmd, mode, &f) }
	fs := cmd.Flags()
	fs.SortFlags = false
	defCount := map[string]int{"conn": 1000, "pub": 10, "sub": 10}[mode]
	fs.IntVarP(&f.count, "count", "c", defCount, "number of clients")
	fs.IntVarP(&f.interval, "interval", "i", 10, "`milliseconds` between two connection starts")
	fs.Float64VarP(&f.connRate, "conn-rate", "R", 0, "connections started per second (instead of -i)")
	fs.IntVarP(&f.startNumber, "start-number", "n", 1, "index (%i) of the first client")
	fs.IntVar(&f.concurrency, "connect-concurrency", 200, "connection attempts in progress at once, at most")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this long (e.g. 30s); 0: see the command's description")
	switch mode {
	case "pub":
		fs.StringVarP(&f.pubTopic, "topic", "t", "", "topic `template` (required): %i client index, %c client id, %u user name")
		fs.IntVarP(&f.qos, "qos", "q", 0, "`QoS`: 0, 1 or 2")
		fs.IntVarP(&f.size, "size", "s", 256, "payload size in `bytes` (at least 12: they carry the send time)")
		fs.BoolVarP(&f.retain, "retain", "r", false, "retain the messages")
		fs.IntVarP(&f.msgInterval, "message-interval", "I", 1000, "`milliseconds` between two messages of a client; 0: as fast as acknowledgements allow")
		multiShort(fs, "message-interval", "im")
		fs.Float64Var(&f.rate, "rate", 0, "messages per second per client (instead of -I)")
		fs.IntVarP(&f.limit, "limit", "L", 0, "messages per client, then stop; 0: no limit")
		fs.IntVarP(&f.inflight, "inflight", "F", 64, "unacknowledged QoS 1/2 messages per client, at most")
		fs.BoolVarP(&f.waitAll, "wait-before-publishing", "w", false, "start publishing once every client is connected")
	case "sub":
		fs.StringArrayVarP(&f.topics, "topic", "t", nil, "topic filter `template` (required; repeatable): %i client index, %c client id, %u user name")
		fs.IntVarP(&f.qos, "qos", "q", 0, "subscription `QoS`: 0, 1 or 2")
		fs.IntVarP(&f.limit, "limit", "L", 0, "messages per client, then stop; 0: no limit")
		fs.DurationVar(&f.idleTimeout, "idle-timeout", 0, "stop after this long without a message, once some came")
	}
	fs.BoolVar(&f.json, "json", false, "print the summary as JSON")
	fs.BoolVar(&f.noProgress, "no-progress", false, "no progress lines on stderr")
	f.conn.register(fs, forBench)
	if mode == "conn" {
		// MQTTX bench conn: -up is CONNECT's, as in conn.
		multiShort(fs, "conn-user-properties", "up")
	}
	addHelpFlag(cmd)
	return cmd
}

// validate checks the flags and fills in derived values.
func (f *benchFlags) validate(fs *pflag.FlagSet, mode string) error {
	if f.count < 1 {
		return fmt.Errorf("-c/--count: want at least 1, got %d", f.count)
	}
	if f.interval < 0 || f.connRate < 0 || f.concurrency < 1 || f.duration < 0 || f.limit < 0 || f.idleTimeout < 0 {
		return errors.New("bench: -i, -R, -L, --connect-concurrency, --duration and --idle-timeout must not be negative")
	}
	if fs.Changed("conn-rate") && fs.Changed("interval") {
		return errors.New("bench: give -i (interval) or -R (rate), not both")
	}
	if mode == "conn" {
		return nil
	}
	if err := checkQoS("qos", f.qos); err != nil {
		return err
	}
	if mode == "pub" {
		if f.pubTopic == "" {
			return errors.New("bench pub: give the topic with -t/--topic")
		}
		f.topics = []string{f.pubTopic}
		if f.size < benchHeaderSize {
			return fmt.Errorf("-s/--size: at least %d bytes, got %d", benchHeaderSize, f.size)
		}
		if f.msgInterval < 0 || f.rate < 0 || f.inflight < 1 {
			return errors.New("bench pub: -I, --rate and --inflight must be positive")
		}
		if fs.Changed("rate") && fs.Changed("message-interval") {
			return errors.New("bench pub: give -I (interval) or --rate, not both")
		}
		if strings.ContainsAny(f.topics[0], "+#") {
			return fmt.Errorf("bench pub: topic %q: a topic name has no wildcards", f.topics[0])
		}
	}
	if mode == "sub" && len(f.topics) == 0 {
		return errors.New("bench sub: give at least one topic with -t/--topic")
	}
	return nil
}

// connectInterval is the time between two connection starts.
func (f *benchFlags) connectInterval() time.Duration {
	if f.connRate > 0 {
		return time.Duration(float64(time.Second) / f.connRate)
	}
	return time.Duration(f.interval) * time.Millisecond
}

// publishInterval is the time between two messages of a client.
func (f *benchFlags) publishInterval() time.Duration {
	if f.rate > 0 {
		return time.Duration(float64(time.Second) / f.rate)
	}
	return time.Duration(f.msgInterval) * time.Millisecond
}

// expand fills in a template: %i the client index, %c the client id, %u
// the user name.
func expand(tmpl string, index int, clientID, username string) string {
	if !strings.Contains(tmpl, "%") {
		return tmpl
	}
	return strings.NewReplacer("%i", strconv.Itoa(index), "%c", clientID, "%u", username).Replace(tmpl)
}

// bench is one run of vigil bench.
type bench struct {
	mode  string
	f     *benchFlags
	cfg   client.Config // template
	stats *benchStats

	mu      sync.Mutex
	clients []*client.Client // guarded by mu

	pubWG     sync.WaitGroup // publishers
	pubCtx    context.Context
	allReady  chan struct{} // closed when every client connected or failed
	doneCount int           // sub: clients that reached -L; guarded by mu
	allDone   chan struct{} // sub: every client reached -L
}

func runBench(cmd *cobra.Command, mode string, f *benchFlags) error {
	fs := cmd.Flags()
	if err := f.validate(fs, mode); err != nil {
		return err
	}
	cfg, err := f.conn.config(fs, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if err := checkFDs(f.count); err != nil {
		return err
	}
	if !fs.Changed("client-id") {
		f.conn.clientID = randomClientID("vigil-bench-"+mode+"-") + "-%i"
	}
	cfg.ConnectRetry = false
	if mode == "conn" {
		cfg.MessageBuffer = 16
	}
	ctx := cmd.Context()
	if f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	pubCtx, pubCancel := context.WithCancel(context.Background())
	defer pubCancel()
	b := &bench{mode: mode, f: f, cfg: cfg, stats: newBenchStats(), pubCtx: pubCtx,
		allReady: make(chan struct{}), allDone: make(chan struct{})}
	start := time.Now()
	stopProgress := b.progress(cmd, start)

	b.launch(ctx)
	end := b.wait(ctx)
	elapsed := end.Sub(start)
	if mode == "pub" {
		// Acknowledgements still due get a little time.
		done := make(chan struct{})
		go func() { b.pubWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		pubCancel()
		b.pubWG.Wait()
	}
	stopProgress()
	b.disconnectAll()

	r := b.result(elapsed)
	if f.json {
		return r.writeJSON(cmd.OutOrStdout())
	}
	r.writeText(cmd.OutOrStdout())
	if r.Connected == 0 {
		return &exitError{code: 1, err: fmt.Errorf("bench %s: no client connected: %s", mode, r.FirstError)}
	}
	return nil
}

// launch starts the clients at the configured interval, in the background.
func (b *bench) launch(ctx context.Context) {
	f := b.f
	sem := make(chan struct{}, f.concurrency)
	iv := f.connectInterval()
	go func() {
		var wg sync.WaitGroup
		defer func() {
			wg.Wait()
			close(b.allReady)
		}()
		start := time.Now()
		for i := range f.count {
			if iv > 0 {
				if d := time.Until(start.Add(time.Duration(i) * iv)); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return
					}
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.runClient(ctx, f.startNumber+i, sem)
			}()
		}
	}()
}

// runClient connects one client and starts its work. It releases sem when
// the connection attempt is over.
func (b *bench) runClient(ctx context.Context, index int, sem chan struct{}) {
	s := b.stats
	cfg := b.cfg
	cfg.ClientID = expand(b.f.conn.clientID, index, "", cfg.Username)
	cfg.OnConnect = func(*packet.Connack) { s.connected.Add(1) }
	cfg.OnConnectionLost = func(err error, _ packet.ReasonCode) {
		s.connected.Add(-1)
		s.fail(&s.lost, err)
	}
	var topics []string
	for _, t := range b.f.topics {
		topics = append(topics, expand(t, index, cfg.ClientID, cfg.Username))
	}
	var received int
	if b.mode == "sub" {
		cfg.DefaultHandler = func(m *packet.Publish) {
			now := time.Now()
			s.received.Add(1)
			s.recvSpan.mark(now)
			if sent, ok := benchSentAt(m.Payload); ok {
				s.latency.record(now.Sub(sent))
			}
			received++
			if b.f.limit > 0 && received == b.f.limit {
				b.clientDone()
			}
		}
	}
	c, err := client.New(cfg)
	if err != nil {
		<-sem
		s.fail(&s.connectFailed, err)
		return
	}
	s.connecting.Add(1)
	t0 := time.Now()
	err = c.Connect(ctx)
	s.connecting.Add(-1)
	<-sem
	if err != nil {
		if ctx.Err() == nil {
			s.fail(&s.connectFailed, err)
		}
		return
	}
	s.connectLat.record(time.Since(t0))
	s.connectSpan.mark(time.Now())
	s.everConnected.Add(1)
	b.mu.Lock()
	b.clients = append(b.clients, c)
	b.mu.Unlock()

	switch b.mode {
	case "sub":
		subs := make([]client.Subscription, len(topics))
		for i, t := range topics {
			subs[i] = client.Sub(t, byte(b.f.qos), nil)
		}
		if _, err := c.Subscribe(ctx, subs...); err != nil {
			if ctx.Err() == nil {
				s.fail(&s.errors, err)
			}
			return
		}
		s.subscribed.Add(1)
	case "pub":
		b.pubWG.Add(1)
		go func() {
			defer b.pubWG.Done()
			if b.f.waitAll {
				select {
				case <-b.allReady:
				case <-ctx.Done():
					return
				}
			}
			b.publishLoop(ctx, c, topics[0])
		}()
	}
}

// clientDone counts a subscriber that received its -L messages.
func (b *bench) clientDone() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.doneCount++
	if b.doneCount == b.f.count {
		close(b.allDone)
	}
}

// publishLoop publishes on one client until -L, ctx's end or an error.
// QoS 1 and 2 messages are published concurrently, at most --inflight at
// once; a message counts when acknowledged.
func (b *bench) publishLoop(ctx context.Context, c *client.Client, topic string) {
	f, s := b.f, b.stats
	iv := f.publishInterval()
	var tick <-chan time.Time
	if iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	sem := make(chan struct{}, f.inflight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for n := 0; f.limit == 0 || n < f.limit; n++ {
		if n > 0 && tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		payload := make([]byte, f.size)
		now := time.Now()
		putBenchHeader(payload, now)
		m := &packet.Publish{Topic: topic, QoS: byte(f.qos), Retain: f.retain, Payload: payload}
		publish := func() {
			defer func() { <-sem }()
			s.inflight.Add(1)
			err := c.Publish(b.pubCtx, m)
			s.inflight.Add(-1)
			if err != nil {
				s.fail(&s.errors, err)
				return
			}
			done := time.Now()
			if f.qos > 0 {
				s.latency.record(done.Sub(now))
			}
			s.sent.Add(1)
			s.sendSpan.mark(done)
		}
		if f.qos == 0 {
			publish()
			if c.State() == client.StateStopped {
				return
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			publish()
		}()
		if c.State() == client.StateStopped {
			return
		}
	}
}

// wait returns when the run is over: ctx ended, or the command's own end
// (conn: every client tried; pub: every publisher done; sub: -L reached
// or idle).
func (b *bench) wait(ctx context.Context) time.Time {
	switch b.mode {
	case "conn":
		if b.f.duration == 0 {
			select {
			case <-b.allReady:
			case <-ctx.Done():
			}
			return time.Now()
		}
	case "pub":
		select {
		case <-b.allReady:
		case <-ctx.Done():
			return time.Now()
		}
		done := make(chan struct{})
		go func() { b.pubWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		}
		return time.Now()
	case "sub":
		var idle <-chan time.Time
		if b.f.idleTimeout > 0 {
			t := time.NewTicker(b.f.idleTimeout / 4)
			defer t.Stop()
			idle = t.C
		}
		for {
			select {
			case <-b.allDone:
				return time.Now()
			case <-ctx.Done():
				return time.Now()
			case <-idle:
				last := b.stats.recvSpan.last.Load()
				if last != 0 && time.Since(time.Unix(0, last)) >= b.f.idleTimeout {
					return time.Now()
				}
			}
		}
	}
	<-ctx.Done()
	return time.Now()
}

// disconnectAll disconnects every client, many at a time.
func (b *bench) disconnectAll() {
	b.mu.Lock()
	cs := b.clients
	b.clients = nil
	b.mu.Unlock()
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, c := range cs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c.Disconnect(ctx, packet.NormalDisconnection)
		}()
	}
	wg.Wait()
}

// progress prints a status line to stderr every second until the
// returned function is called.
func (b *bench) progress(cmd *cobra.Command, start time.Time) (stop func()) {
	if b.f.noProgress {
		return func() {}
	}
	w := cmd.ErrOrStderr()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		s := b.stats
		var lastSent, lastRecv, lastConn int64
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				sent, recv, conn := s.sent.Load(), s.received.Load(), s.everConnected.Load()
				line := fmt.Sprintf("bench %s %4.0fs  connected %d/%d (+%d/s)", b.mode, now.Sub(start).Seconds(),
					s.connected.Load(), b.f.count, conn-lastConn)
				if n := s.connectFailed.Load() + s.lost.Load(); n > 0 {
					line += fmt.Sprintf("  failed %d  lost %d", s.connectFailed.Load(), s.lost.Load())
				}
				switch b.mode {
				case "pub":
					line += fmt.Sprintf("  sent %d (%d/s)", sent, sent-lastSent)
					if b.f.qos > 0 {
						line += fmt.Sprintf("  inflight %d", s.inflight.Load())
					}
				case "sub":
					line += fmt.Sprintf("  subscribed %d  received %d (%d/s)", s.subscribed.Load(), recv, recv-lastRecv)
				}
				line += fmt.Sprintf("  errors %d", s.errors.Load())
				fmt.Fprintln(w, line)
				lastSent, lastRecv, lastConn = sent, recv, conn
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func (b *bench) result(elapsed time.Duration) *benchResult {
	s := b.stats
	r := &benchResult{
		Command:        b.mode,
		Broker:         b.cfg.Servers[0],
		MQTTVersion:    b.cfg.Version.String(),
		Clients:        b.f.count,
		Connected:      s.everConnected.Load(),
		ConnectFailed:  s.connectFailed.Load(),
		Lost:           s.lost.Load(),
		ConnectRate:    s.connectSpan.rate(s.everConnected.Load()),
		ConnectLatency: s.connectLat.summary(),
		DurationS:      elapsed.Seconds(),
		Errors:         s.errors.Load(),
		FirstError:     s.firstErr,
	}
	if b.mode == "conn" {
		return r
	}
	qos := b.f.qos
	r.QoS = &qos
	r.Topics = b.f.topics
	r.Latency = s.latency.summary()
	switch b.mode {
	case "pub":
		n := s.sent.Load()
		r.Sent = &n
		r.PayloadSize = b.f.size
		rate := s.sendSpan.rate(n)
		r.Rate = &rate
	case "sub":
		n := s.received.Load()
		r.Received = &n
		r.Subscribed = s.subscribed.Load()
		rate := s.recvSpan.rate(n)
		r.Rate = &rate
	}
	return r
}

// fdHeadroom is the file descriptors a bench process needs besides one per
// client.
const fdHeadroom = 64

func checkFDs(clients int) error {
	limit, ok := fdLimit()
	if !ok || uint64(clients+fdHeadroom) <= limit {
		return nil
	}
	return fmt.Errorf("bench: %d clients need about %d file descriptors, the limit is %d: raise it (ulimit -n) or split the load over several processes",
		clients, clients+fdHeadroom, limit)
}
