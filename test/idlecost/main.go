// Command idlecost measures what an idle MQTT connection costs the broker:
// it starts the broker in a child process (this same program, embedding
// broker.New), opens -n idle MQTT connections to it from this process
// (CONNECT with Keep Alive 0, then nothing; -subscribe adds one SUBSCRIBE
// each), and reads the child's resident
// memory (VmRSS in /proc/PID/status) before and after.
//
//	go run ./test/idlecost -n 10000
//
// The broker and the clients are separate processes so that each holds one
// end of every connection within the file descriptor limit (which both
// raise to their hard limit). With -profile DIR the broker writes a heap
// profile and a goroutine dump there once the connections are idle.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/packet"
)

func main() {
	role := flag.String("role", "client", "client (measures) or broker (the child process)")
	n := flag.Int("n", 10000, "idle connections to open")
	workers := flag.Int("workers", 16, "connections opened in parallel")
	var d dialer
	flag.BoolVar(&d.subscribe, "subscribe", false, "each connection also subscribes to a topic of its own (QoS 1) and waits for the SUBACK before going idle")
	flag.UintVar(&d.keepAlive, "keepalive", 0, "the Keep Alive (seconds) each connection asks for; 0: none (the connections must stay idle for less than 1.5 times it)")
	profile := flag.String("profile", "", "directory for the broker's heap profile and goroutine dump")
	idle := durations{2 * time.Second}
	flag.Var(&idle, "idle", "comma-separated times after the last connection at which to read the RSS as it stands, e.g. 2s,30s,150s (Go forces a GC every 2 minutes: 150s shows the memory a long-idle broker holds without help); the last is followed by the GC+FreeOSMemory reading")
	flag.Parse()
	raiseFileLimit()
	if *role == "broker" {
		runBroker(*profile)
		return
	}
	if err := measure(d, *n, *workers, idle, *profile); err != nil {
		log.Fatal(err)
	}
}

// durations is a flag.Value: a comma-separated list of increasing durations.
type durations []time.Duration

func (d *durations) String() string {
	var s []string
	for _, v := range *d {
		s = append(s, v.String())
	}
	return strings.Join(s, ",")
}

func (d *durations) Set(v string) error {
	*d = nil
	for f := range strings.SplitSeq(v, ",") {
		t, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		if len(*d) > 0 && t <= (*d)[len(*d)-1] {
			return fmt.Errorf("durations must increase: %s", v)
		}
		*d = append(*d, t)
	}
	if len(*d) == 0 {
		return fmt.Errorf("no duration in %q", v)
	}
	return nil
}

// runBroker serves on a loopback port, prints the address, and on SIGUSR1
// collects garbage, returns free memory to the OS, writes the profiles if
// asked and prints "settled". On SIGUSR2 it prints the runtime's memory
// statistics as they stand (no collection).
func runBroker(profileDir string) {
	if profileDir != "" {
		// Record every allocation: the profile then accounts for each
		// byte a connection holds (its readings of RSS are a little
		// higher than without).
		runtime.MemProfileRate = 1
	}
	srv := broker.New(broker.Options{Logger: slog.New(slog.DiscardHandler)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for s := range sig {
			if s == syscall.SIGUSR2 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				fmt.Printf("heap_inuse=%d heap_unreleased_free=%d stack_inuse=%d sys=%d gcs=%d goroutines=%d allocated=%d mallocs=%d\n",
					ms.HeapInuse, ms.HeapIdle-ms.HeapReleased, ms.StackInuse, ms.Sys, ms.NumGC, runtime.NumGoroutine(), ms.TotalAlloc, ms.Mallocs)
				continue
			}
			runtime.GC()
			debug.FreeOSMemory()
			if profileDir != "" {
				writeProfiles(profileDir)
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("settled heap_inuse=%d stack_inuse=%d sys=%d goroutines=%d\n",
				ms.HeapInuse, ms.StackInuse, ms.Sys, runtime.NumGoroutine())
		}
	}()
	fmt.Println("listening", l.Addr())
	srv.Serve(l)
}

func writeProfiles(dir string) {
	os.MkdirAll(dir, 0o755)
	if f, err := os.Create(filepath.Join(dir, "heap.pprof")); err == nil {
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	if f, err := os.Create(filepath.Join(dir, "goroutines.txt")); err == nil {
		pprof.Lookup("goroutine").WriteTo(f, 1)
		f.Close()
	}
}

func measure(d dialer, n, workers int, idle []time.Duration, profileDir string) error {
	args := []string{"-role=broker"}
	if profileDir != "" {
		args = append(args, "-profile="+profileDir)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		return fmt.Errorf("broker printed nothing")
	}
	addr, ok := strings.CutPrefix(lines.Text(), "listening ")
	if !ok {
		return fmt.Errorf("broker said %q", lines.Text())
	}
	pid := cmd.Process.Pid
	ask := func(s syscall.Signal) (string, error) {
		cmd.Process.Signal(s)
		if !lines.Scan() {
			return "", fmt.Errorf("broker exited")
		}
		return lines.Text(), nil
	}
	settle := func() (string, error) { return ask(syscall.SIGUSR1) }

	// Warm up: one connection, so that the baseline includes the code and
	// pools every connection shares.
	warm, err := d.dial(addr, "warm-up")
	if err != nil {
		return err
	}
	defer warm.Close()
	info0, err := settle()
	if err != nil {
		return err
	}
	before, err := vmRSS(pid)
	if err != nil {
		return err
	}

	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan int)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := range next {
				c, err := d.dial(addr, fmt.Sprintf("idle-%06d", i))
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		})
	}
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			return err
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	opened := time.Since(start)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	// Idle: give the broker's read loops time to park, and its write
	// buffers time to go back to the pool. A fixed wait is the measurement
	// itself here (how much memory after this long idle), not a stand-in
	// for a signal.
	fmt.Printf("connections:       %d (opened in %v)\n", n, opened.Round(time.Millisecond))
	fmt.Printf("broker before:     VmRSS %d KB   (%s)\n", before, info0)
	done := time.Now()
	var afterRaw int
	for _, at := range idle {
		time.Sleep(time.Until(done.Add(at)))
		if afterRaw, err = vmRSS(pid); err != nil {
			return err
		}
		info, err := ask(syscall.SIGUSR2)
		if err != nil {
			return err
		}
		fmt.Printf("after %v idle:  VmRSS %d KB as it stands: %.2f KB per connection   (%s)\n",
			at, afterRaw, float64(afterRaw-before)/float64(n), info)
	}
	info1, err := settle()
	if err != nil {
		return err
	}
	after, err := vmRSS(pid)
	if err != nil {
		return err
	}
	fmt.Printf("then GC+FreeOSMemory: VmRSS %d KB: %.2f KB per connection   (%s)\n",
		after, float64(after-before)/float64(n), info1)
	fmt.Printf("per idle connection: %.2f KB (after GC), %.2f KB (as it stands after %v)\n",
		float64(after-before)/float64(n), float64(afterRaw-before)/float64(n), idle[len(idle)-1])
	return nil
}

// dialer opens the idle connections.
type dialer struct {
	subscribe bool
	keepAlive uint
}

// dial opens an MQTT 3.1.1 connection and waits for its CONNACK and, with
// subscribe, for the SUBACK of a subscription to "idle/" + id.
func (d dialer) dial(addr, id string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	b, _ := (&packet.Connect{Version: packet.V311, ClientID: id, CleanStart: true, KeepAlive: uint16(d.keepAlive)}).Append(nil)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		c.Close()
		return nil, err
	}
	ack := make([]byte, 5)
	if err := readFull(c, ack[:4]); err != nil {
		return nil, err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("CONNACK % x", ack[:4])
	}
	if d.subscribe {
		b, _ := (&packet.Subscribe{Version: packet.V311, PacketID: 1,
			Subscriptions: []packet.Subscription{{Filter: "idle/" + id, QoS: 1}}}).Append(nil)
		if _, err := c.Write(b); err != nil {
			c.Close()
			return nil, err
		}
		if err := readFull(c, ack); err != nil {
			return nil, err
		}
		if ack[0] != 0x90 || ack[4] != 1 {
			c.Close()
			return nil, fmt.Errorf("SUBACK % x", ack)
		}
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// readFull reads len(b) bytes from c, closing c on failure.
func readFull(c net.Conn, b []byte) error {
	for got := 0; got < len(b); {
		k, err := c.Read(b[got:])
		if err != nil {
			c.Close()
			return err
		}
		got += k
	}
	return nil
}

// vmRSS reads the resident set size of process pid in KB.
func vmRSS(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
