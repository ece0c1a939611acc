package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/config"
	"github.com/vigilmq/vigil/metrics"
	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/store/memory"
	"github.com/vigilmq/vigil/store/pebble"
)

// brokerFlags are the flags of vigil broker.
type brokerFlags struct {
	configFile string

	listen, tls, ws, wss []string // listener addresses
	wsPath               string
	cert, key, clientCA  string
	requireClientCert    bool
}

// settingFlags map flags to the configuration keys they override. Their
// values are passed to the config package as written, so a flag accepts
// what the file accepts and its errors read the same.
var settingFlags = []struct {
	flag, key, usage string
}{
	{"log-level", "log.level", "log `level`: debug, info, warn or error (log.level)"},
	{"log-format", "log.format", "log `format`: text or json (log.format)"},
	{"connect-timeout", "connect_timeout", "`time` a client has to send CONNECT, e.g. 10s (connect_timeout)"},
	{"max-keepalive", "max_keepalive", "largest Keep Alive allowed, `seconds` or a duration; 0 = no cap (max_keepalive)"},
	{"server-keepalive", "server_keepalive", "Keep Alive imposed on MQTT 5 clients, `seconds` or a duration; 0 = off (server_keepalive)"},
	{"keepalive-multiplier", "keepalive_multiplier", "close after Keep Alive x this `factor` with no packet, > 1 (keepalive_multiplier)"},
	{"max-session-expiry", "max_session_expiry", "cap on Session Expiry Interval, `seconds`, a duration or \"never\" (max_session_expiry)"},
	{"max-packet-size", "max_packet_size", "largest packet accepted, `bytes` or e.g. 256KiB (max_packet_size)"},
	{"metrics", "metrics.listen", "`host:port` of an HTTP server with Prometheus metrics at /metrics (metrics.listen)"},
	{"shutdown-timeout", "shutdown_timeout", "`time` bound on a graceful shutdown, e.g. 10s (shutdown_timeout)"},
	{"store", "store.type", "store `type`: pebble (durable, the default) or memory (store.type)"},
	{"data-dir", "store.dir", "`directory` of the pebble store (store.dir, default ./data)"},
}

func newBrokerCmd() *cobra.Command {
	var f brokerFlags
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the MQTT broker",
		Long: `Run the MQTT broker: MQTT 3.1, 3.1.1 and 5.0 over TCP, TLS, WebSocket and WSS.

Settings come from the configuration file (--config; see vigil.yaml and
docs/configuration.md for every key), and the flags override it. When any of
--listen, --tls, --ws or --wss is given, the flags' listeners replace the
file's. Without listeners, the broker serves TCP on :1883, every interface,
IPv4 and IPv6.

On SIGINT or SIGTERM the broker shuts down gracefully: it stops accepting,
publishes the wills that are due, sends MQTT 5 clients DISCONNECT 0x8B
(Server shutting down), and closes the connections within --shutdown-timeout.`,
		Example: `  vigil broker                                  # TCP on :1883
  vigil broker --config vigil.yaml
  vigil broker --listen 127.0.0.1:1883 --listen [::1]:1883
  vigil broker --ws :8083 --tls :8883 --cert server.pem --key server.key
  vigil broker --max-keepalive 300 --server-keepalive 60 --log-level debug`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBroker(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&f.configFile, "config", "c", "", "configuration `file` (YAML)")
	fl.StringArrayVar(&f.listen, "listen", nil, "serve MQTT over TCP on `host:port` (repeatable)")
	fl.StringArrayVar(&f.tls, "tls", nil, "serve MQTT over TLS on `host:port` (repeatable; needs --cert and --key)")
	fl.StringArrayVar(&f.ws, "ws", nil, "serve MQTT over WebSocket on `host:port` (repeatable)")
	fl.StringArrayVar(&f.wss, "wss", nil, "serve MQTT over WebSocket with TLS on `host:port` (repeatable; needs --cert and --key)")
	fl.StringVar(&f.wsPath, "ws-path", broker.DefaultWSPath, "HTTP `path` of --ws and --wss listeners")
	fl.StringVar(&f.cert, "cert", "", "TLS certificate chain `file` (PEM) for --tls and --wss")
	fl.StringVar(&f.key, "key", "", "TLS private key `file` (PEM) for --tls and --wss")
	fl.StringVar(&f.clientCA, "client-ca", "", "CA certificates `file` (PEM) to verify client certificates for --tls and --wss")
	fl.BoolVar(&f.requireClientCert, "require-client-cert", false, "refuse TLS clients without a certificate signed by --client-ca")
	for _, s := range settingFlags {
		fl.String(s.flag, "", s.usage)
	}
	return cmd
}

func runBroker(cmd *cobra.Command, f *brokerFlags) error {
	cfg, err := loadBrokerConfig(cmd.Flags(), f)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	log := cfg.Log.NewLogger(stderr)
	cfg.Options.Logger = log
	st, err := openStore(cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	cfg.Options.Store = st
	srv := broker.New(cfg.Options)
	if err := srv.Restore(cmd.Context()); err != nil {
		return err
	}

	listeners := make([]net.Listener, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		nl, err := l.Listen()
		if err != nil {
			for _, o := range listeners {
				o.Close()
			}
			return fmt.Errorf("%s listener %s: %w", cmp.Or(l.Type, broker.ListenerTCP), l.Addr, err)
		}
		listeners = append(listeners, nl)
	}
	errc := make(chan error, len(listeners))
	for i, nl := range listeners {
		fmt.Fprintf(stderr, "vigil: listening on %s\n", listenURL(cfg.Listeners[i], nl))
		go func() { errc <- srv.ServeListener(nl) }()
	}
	if cfg.Store.Type == config.StoreMemory {
		log.Info("broker started", "store", cfg.Store.Type)
	} else {
		log.Info("broker started", "store", cfg.Store.Type, "dir", cfg.Store.Dir, "sync", cfg.Store.Sync)
	}
	if cfg.Metrics.Listen != "" {
		ml, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			srv.Close()
			return fmt.Errorf("metrics listener %s: %w", cfg.Metrics.Listen, err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(metrics.NewCollector(srv), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ml)
		defer hs.Close()
		fmt.Fprintf(stderr, "vigil: metrics on http://%s/metrics\n", ml.Addr())
	}

	select {
	case <-cmd.Context().Done():
	case err := <-errc:
		srv.Close()
		if errors.Is(err, broker.ErrServerClosed) {
			return nil
		}
		return err
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown timed out; connections closed", "timeout", cfg.ShutdownTimeout)
	}
	for range listeners {
		<-errc
	}
	return nil
}

// openStore opens the store the configuration asks for.
func openStore(cfg *config.Config, log *slog.Logger) (store.Store, error) {
	if cfg.Store.Type == config.StoreMemory {
		return memory.New(), nil
	}
	sync, err := store.ParseSync(cfg.Store.Sync)
	if err != nil {
		return nil, fmt.Errorf("store.sync: %w", err)
	}
	st, err := pebble.Open(cfg.Store.Dir, pebble.Options{Sync: sync, SyncInterval: cfg.Store.SyncInterval, Logger: log})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// loadBrokerConfig reads the configuration file and applies the flags.
func loadBrokerConfig(fl *pflag.FlagSet, f *brokerFlags) (*config.Config, error) {
	var overrides []config.Override
	for _, s := range settingFlags {
		if fl.Changed(s.flag) {
			v, _ := fl.GetString(s.flag)
			overrides = append(overrides, config.Override{Key: s.key, Value: v, Source: "--" + s.flag})
		}
	}
	cfg, err := config.Load(f.configFile, overrides...)
	if err != nil {
		return nil, err
	}
	ls, err := flagListeners(fl, f)
	if err != nil {
		return nil, err
	}
	if len(ls) > 0 {
		cfg.Listeners = ls
	}
	return cfg, nil
}

// flagListeners builds the listeners given by flags.
func flagListeners(fl *pflag.FlagSet, f *brokerFlags) ([]broker.Listener, error) {
	secure := len(f.tls) > 0 || len(f.wss) > 0
	web := len(f.ws) > 0 || len(f.wss) > 0
	for _, name := range []string{"cert", "key", "client-ca", "require-client-cert"} {
		if fl.Changed(name) && !secure {
			return nil, fmt.Errorf("--%s is only used with --tls or --wss", name)
		}
	}
	if fl.Changed("ws-path") && !web {
		return nil, errors.New("--ws-path is only used with --ws or --wss")
	}
	if !strings.HasPrefix(f.wsPath, "/") {
		return nil, fmt.Errorf("--ws-path: must start with /, got %q", f.wsPath)
	}
	var tlsFiles config.TLSFiles
	if secure {
		if f.cert == "" || f.key == "" {
			return nil, errors.New("--tls and --wss need --cert and --key")
		}
		tlsFiles = config.TLSFiles{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.clientCA, RequireClientCert: f.requireClientCert}
	}
	var ls []broker.Listener
	add := func(flag, typ string, addrs []string) error {
		for _, a := range addrs {
			if err := checkHostPort(a); err != nil {
				return fmt.Errorf("--%s %s: %w", flag, a, err)
			}
			l := broker.Listener{Type: typ, Addr: a}
			if typ == broker.ListenerWS || typ == broker.ListenerWSS {
				l.Path = f.wsPath
			}
			ls = append(ls, l)
		}
		return nil
	}
	for _, g := range []struct {
		flag, typ string
		addrs     []string
	}{
		{"listen", broker.ListenerTCP, f.listen},
		{"tls", broker.ListenerTLS, f.tls},
		{"ws", broker.ListenerWS, f.ws},
		{"wss", broker.ListenerWSS, f.wss},
	} {
		if err := add(g.flag, g.typ, g.addrs); err != nil {
			return nil, err
		}
	}
	if secure {
		cfg, err := config.TLSConfig(tlsFiles)
		if err != nil {
			var ce *config.Error
			if errors.As(err, &ce) {
				flag := map[string]string{"cert_file": "--cert", "key_file": "--key", "client_ca_file": "--client-ca"}[ce.Key]
				return nil, fmt.Errorf("%s: %w", cmp.Or(flag, "--cert and --key"), ce.Err)
			}
			return nil, err
		}
		for i := range ls {
			if ls[i].Type == broker.ListenerTLS || ls[i].Type == broker.ListenerWSS {
				ls[i].TLS = cfg
			}
		}
	}
	return ls, nil
}

func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return errors.New("want host:port, like :1883, 127.0.0.1:1883 or [::1]:1883")
	}
	return nil
}

// listenURL describes an open listener for people: its type, bound
// address, WebSocket path and name.
func listenURL(l broker.Listener, nl net.Listener) string {
	s := cmp.Or(l.Type, broker.ListenerTCP) + "://" + nl.Addr().String()
	if l.Type == broker.ListenerWS || l.Type == broker.ListenerWSS {
		s += cmp.Or(l.Path, broker.DefaultWSPath)
	}
	if l.Name != "" {
		s += " (" + l.Name + ")"
	}
	return s
}
