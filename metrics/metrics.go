// Package metrics exports a broker's counters and gauges to Prometheus.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(srv))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The collector reads broker.Stats and broker.Server.Gauges at scrape time:
// nothing is added to the broker's hot paths.
package metrics

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilmq/vigil/broker"
	"github.com/vigilmq/vigil/packet"
)

// Collector is a prometheus.Collector for one broker.
type Collector struct {
	srv      *broker.Server
	counters []counter
	gauges   []gauge
	exits    *prometheus.Desc
}

type counter struct {
	desc *prometheus.Desc
	v    *atomic.Int64
}

type gauge struct {
	desc *prometheus.Desc
	get  func(broker.Gauges) int
}

// NewCollector returns a collector of srv's metrics, all prefixed "vigil_".
func NewCollector(srv *broker.Server) *Collector {
	st := &srv.Stats
	c := &Collector{srv: srv}
	add := func(name, help string, v *atomic.Int64) {
		c.counters = append(c.counters, counter{prometheus.NewDesc("vigil_"+name, help, nil, nil), v})
	}
	add("connections_accepted_total", "Network connections accepted.", &st.ConnectionsAccepted)
	add("connects_refused_total", "CONNECTs answered with an error CONNACK.", &st.ConnectsRefused)
	add("takeovers_total", "Connections closed by a CONNECT with the same client id.", &st.Takeovers)
	add("flap_bans_total", "Client ids refused by flapping protection.", &st.FlapBans)
	add("keepalive_timeouts_total", "Connections closed for silence past Keep Alive x multiplier.", &st.KeepAliveTimeouts)
	add("connect_timeouts_total", "Connections closed without a CONNECT in time.", &st.ConnectTimeouts)
	add("protocol_errors_total", "Connections closed for a malformed packet or a protocol violation.", &st.ProtocolErrors)
	add("slow_consumers_total", "Connections closed because they did not read.", &st.SlowConsumers)
	add("messages_received_total", "PUBLISH packets received from clients.", &st.MessagesReceived)
	add("messages_sent_total", "PUBLISH packets sent to clients.", &st.MessagesSent)
	add("messages_dropped_total", "Deliveries dropped (queue full, QoS 0 offline, too large, expired).", &st.MessagesDropped)
	add("queue_overflows_total", "Deliveries dropped because a session queue was full.", &st.QueueOverflows)
	add("qos0_overflows_total", "QoS 0 deliveries dropped because a connection was above write_buffer_max.", &st.QoS0Overflows)
	add("expired_messages_total", "Queued messages dropped because their Message Expiry Interval passed.", &st.ExpiredMessages)
	add("wills_published_total", "Will Messages published.", &st.WillsPublished)
	add("sessions_expired_total", "Sessions ended by their expiry interval.", &st.SessionsExpired)
	add("store_read_errors_total", "Failed reads of queued messages from the store (retried with backoff).", &st.StoreReadErrors)
	g := func(name, help string, get func(broker.Gauges) int) {
		c.gauges = append(c.gauges, gauge{prometheus.NewDesc("vigil_"+name, help, nil, nil), get})
	}
	g("connections", "Network connections being served.", func(x broker.Gauges) int { return x.Connections })
	g("sessions", "Sessions, online and offline.", func(x broker.Gauges) int { return x.Sessions })
	g("subscriptions", "Non-shared subscriptions.", func(x broker.Gauges) int { return x.Subscriptions })
	g("shared_subscription_members", "Memberships of shared subscription groups.", func(x broker.Gauges) int { return x.SharedMembers })
	g("retained_messages", "Retained messages.", func(x broker.Gauges) int { return x.Retained })
	g("parked_connections", "Idle connections parked on the poller (no goroutine).", func(x broker.Gauges) int { return x.Parked })
	g("queued_messages_in_memory", "Queued messages waiting for their clients, held in memory.", func(x broker.Gauges) int { return x.QueuedInMemory })
	g("queued_messages_on_disk", "Queued messages waiting for their clients, in the store only (queue_memory).", func(x broker.Gauges) int { return x.QueuedOnDisk })
	c.exits = prometheus.NewDesc("vigil_connection_exits_total", "Connections closed, by the MQTT reason code of the close.", []string{"code", "reason"}, nil)
	return c
}

// Describe sends the descriptors of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range c.counters {
		ch <- x.desc
	}
	for _, x := range c.gauges {
		ch <- x.desc
	}
	ch <- c.exits
}

// Collect reads the broker's counters and gauges.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, x := range c.counters {
		ch <- prometheus.MustNewConstMetric(x.desc, prometheus.CounterValue, float64(x.v.Load()))
	}
	g := c.srv.Gauges()
	for _, x := range c.gauges {
		ch <- prometheus.MustNewConstMetric(x.desc, prometheus.GaugeValue, float64(x.get(g)))
	}
	st := &c.srv.Stats
	for _, code := range st.ExitCodes() {
		ch <- prometheus.MustNewConstMetric(c.exits, prometheus.CounterValue, float64(st.Exits(code)),
			fmt.Sprintf("0x%02X", byte(code)), exitName(code))
	}
}

// exitName is a reason code's name without its value. 0x80 (Unspecified
// error) also counts network failures, which have no code of their own.
func exitName(code packet.ReasonCode) string {
	if code == packet.NormalDisconnection {
		return "Normal disconnection"
	}
	name := code.String()
	if i := strings.LastIndex(name, " ("); i > 0 {
		name = name[:i]
	}
	return name
}
