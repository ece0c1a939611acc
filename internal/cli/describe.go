package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vigilmq/vigil/client"
	"github.com/vigilmq/vigil/packet"
)

// eventLog prints timestamped lines; safe for concurrent use.
type eventLog struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

func newEventLog(w io.Writer) *eventLog { return &eventLog{w: w, now: time.Now} }

// printf prints one event line, and indented detail lines after it.
func (l *eventLog) printf(detail []string, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.now().Format("15:04:05.000")
	fmt.Fprintf(l.w, "%s %s\n", ts, fmt.Sprintf(format, args...))
	for _, d := range detail {
		fmt.Fprintf(l.w, "%*s%s\n", len(ts)+3, "", d)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// connackDetails lists a CONNACK's properties, by their names in the
// specification, in identifier order.
func connackDetails(ca *packet.Connack) []string {
	p := &ca.Props
	var out []string
	add := func(id packet.PropID, name, value string) {
		if p.Has(id) {
			out = append(out, name+": "+value)
		}
	}
	secs := func(v uint32) string { return strconv.FormatUint(uint64(v), 10) + " s" }
	flag := func(v byte) string { return yesNo(v != 0) }
	add(packet.PropSessionExpiry, "Session Expiry Interval", secs(p.SessionExpiry))
	add(packet.PropAssignedClientID, "Assigned Client Identifier", p.AssignedClientID)
	add(packet.PropServerKeepAlive, "Server Keep Alive", secs(uint32(p.ServerKeepAlive)))
	add(packet.PropAuthMethod, "Authentication Method", p.AuthMethod)
	add(packet.PropResponseInfo, "Response Information", p.ResponseInfo)
	add(packet.PropServerReference, "Server Reference", p.ServerReference)
	add(packet.PropReasonString, "Reason String", p.ReasonString)
	add(packet.PropReceiveMaximum, "Receive Maximum", strconv.Itoa(int(p.ReceiveMaximum)))
	add(packet.PropTopicAliasMaximum, "Topic Alias Maximum", strconv.Itoa(int(p.TopicAliasMaximum)))
	add(packet.PropMaximumQoS, "Maximum QoS", strconv.Itoa(int(p.MaximumQoS)))
	add(packet.PropRetainAvailable, "Retain Available", flag(p.RetainAvailable))
	add(packet.PropMaximumPacketSize, "Maximum Packet Size", strconv.FormatUint(uint64(p.MaximumPacketSize), 10))
	add(packet.PropWildcardSubAvailable, "Wildcard Subscription Available", flag(p.WildcardSubAvailable))
	add(packet.PropSubIDAvailable, "Subscription Identifiers Available", flag(p.SubIDAvailable))
	add(packet.PropSharedSubAvailable, "Shared Subscription Available", flag(p.SharedSubAvailable))
	for _, u := range p.User {
		out = append(out, "User Property: "+u.Key+": "+u.Value)
	}
	return out
}

// lostDetail explains a lost connection: the reason code (the server's
// DISCONNECT or the client's own), then the error.
func lostDetail(err error, reason packet.ReasonCode, d client.Disconnection) string {
	var parts []string
	switch {
	case d.Packet != nil:
		parts = append(parts, "DISCONNECT from the broker: "+reason.String())
		if rs := d.Packet.Props.ReasonString; rs != "" {
			parts = append(parts, "Reason String: "+strconv.Quote(rs))
		}
		if ref := d.Packet.Props.ServerReference; ref != "" {
			parts = append(parts, "Server Reference: "+ref)
		}
	case errors.Is(err, client.ErrKeepAliveTimeout):
		parts = append(parts, reason.String()+": nothing received within the keep alive")
	case reason == packet.UnspecifiedError:
		parts = append(parts, "network error, no DISCONNECT")
	default:
		parts = append(parts, reason.String())
	}
	if err != nil && d.Packet == nil {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, "; ")
}

// publishDetails lists a PUBLISH's properties for -v.
func publishDetails(m *packet.Publish) []string {
	p := &m.Props
	var out []string
	if p.Has(packet.PropPayloadFormat) {
		out = append(out, "payload format indicator: "+strconv.Itoa(int(p.PayloadFormat)))
	}
	if p.Has(packet.PropMessageExpiry) {
		out = append(out, "message expiry interval: "+strconv.FormatUint(uint64(p.MessageExpiry), 10)+" s")
	}
	if p.ContentType != "" {
		out = append(out, "content type: "+p.ContentType)
	}
	if p.ResponseTopic != "" {
		out = append(out, "response topic: "+p.ResponseTopic)
	}
	if p.CorrelationData != nil {
		out = append(out, "correlation data: "+printable(p.CorrelationData))
	}
	for _, id := range p.SubscriptionIDs {
		out = append(out, "subscription identifier: "+strconv.Itoa(id))
	}
	for _, u := range p.User {
		out = append(out, "user property: "+u.Key+": "+u.Value)
	}
	return out
}

// printable returns b as text when it is valid UTF-8, else as hex.
func printable(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return "0x" + fmt.Sprintf("%x", b)
}
