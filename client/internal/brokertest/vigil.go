package brokertest

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/vigilmq/vigil/broker"
)

// Vigil starts the Vigil broker in this process on 127.0.0.1 with free
// ports, memory only, and the listeners Options asks for. Extra (mosquitto
// syntax) is ignored. It is closed when the test ends.
func Vigil(t testing.TB, opt Options) *Broker {
	t.Helper()
	srv := broker.New(broker.Options{Logger: slog.New(slog.DiscardHandler), MaxKeepAlive: 0})
	b := &Broker{Name: "vigil", Log: func() string { return "" }}
	var wg sync.WaitGroup
	serve := func(l broker.Listener) string {
		nl, err := l.Listen()
		if err != nil {
			t.Fatalf("vigil listener: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ServeListener(nl); err != nil && !errors.Is(err, broker.ErrServerClosed) {
				t.Errorf("vigil: %v", err)
			}
		}()
		return nl.Addr().String()
	}
	b.Addr = serve(broker.Listener{Type: broker.ListenerTCP, Addr: "127.0.0.1:0"})
	if opt.WebSocket {
		b.WSAddr = serve(broker.Listener{Type: broker.ListenerWS, Addr: "127.0.0.1:0", Path: "/"})
	}
	if opt.TLS {
		pool, files, err := writeCerts(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.LoadX509KeyPair(files[1], files[2])
		if err != nil {
			t.Fatal(err)
		}
		b.TLSAddr = serve(broker.Listener{Type: broker.ListenerTLS, Addr: "127.0.0.1:0",
			TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
		b.CAPool = pool
	}
	var once sync.Once
	b.Stop = func() {
		once.Do(func() {
			srv.Close()
			wg.Wait()
		})
	}
	t.Cleanup(b.Stop)
	return b
}
