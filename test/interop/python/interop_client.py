#!/usr/bin/python3
"""python3-paho-mqtt (Debian, paho-mqtt 1.6) driver for Vigil's interop tests.

Usage: interop_client.py HOST PORT SCENARIO VERSION [ARGS...]

VERSION is 311 or 5. Prints one JSON object a line on standard output;
the Go test (test/interop/python_test.go) asserts them:
  {"event": "connack", "sessionPresent": bool, "reasonCode": int}
  {"event": "suback", "granted": [int...]}
  {"event": "subscribed"}                  (liveness roles: SUBACK received)
  {"event": "message", "topic": str, "payload": str, "qos": int, "retain": 0|1,
   "properties": {...}}                    (5: as mosquitto_sub -F %j names them)
  {"event": "disconnect", "reasonCode": int}
  {"event": "done"}
  {"event": "error", "error": str}         (then exit status 1)

Feature scenarios (the values are those of test/interop/scenarios_test.go):
  connect, wildcards, qos, retained, session
Liveness roles:
  sub CLIENT_ID FILTER...     subscribe at QoS 1 and print messages until killed
  will-client CLIENT_ID TOPIC PAYLOAD DELAY
                              connect with a QoS 1 Will (5: Will Delay DELAY
                              and Session Expiry 60; 3.1.1: Clean Session 1),
                              print "connected" and wait to be killed
  takeover-first CLIENT_ID FILTER
                              (5 only) connect with Clean Start 0 and Session
                              Expiry 60, subscribe, then print the DISCONNECT
                              the server sends and exit
"""

import json
import queue
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TIMEOUT = 30.0
SESSION_EXPIRY = 60

WILD_FILTERS = ["w/+/x", "w/y/#"]
WILD_PUBLISHED = ["w/a/x", "w/a/z", "w/b/x", "w/y/b/c", "w/y", "w/z/x/y", "w/y/end"]
WILD_END = "w/y/end"
QOS_TOPIC = "q/t"
RET_FILTER = "r/+"
SESS_TOPIC = "s/t"
SESS_PAYLOADS = ["m1", "m2", "m3"]

_out = threading.Lock()


def emit(obj):
    with _out:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def fail(text):
    emit({"event": "error", "error": text})
    sys.exit(1)


def code(rc):
    """A reason code as an int: 3.1.1 passes ints, 5.0 ReasonCodes objects."""
    return int(getattr(rc, "value", rc))


def message_properties(m):
    """The MQTT 5 properties of a message, with mosquitto_sub -F %j's keys."""
    p = getattr(m, "properties", None)
    if p is None:
        return None
    out = {}
    for attr, key in (("PayloadFormatIndicator", "payload-format-indicator"),
                      ("MessageExpiryInterval", "message-expiry-interval"),
                      ("ContentType", "content-type"),
                      ("ResponseTopic", "response-topic")):
        if hasattr(p, attr):
            out[key] = getattr(p, attr)
    if hasattr(p, "CorrelationData"):
        out["correlation-data"] = bytes(p.CorrelationData).decode("utf-8", "replace")
    if hasattr(p, "UserProperty"):
        out["user-properties"] = {k: v for k, v in p.UserProperty}
    return out


class Conn:
    """One paho client with its network loop on a thread and waitable events."""

    def __init__(self, host, port, version, client_id, persistent=False, emit_messages=True):
        self.host, self.port = host, port
        self.v5 = version == "5"
        self.persistent = persistent
        self.emit_messages = emit_messages
        self.announce_subscribed = False
        kw = {}
        if hasattr(mqtt, "CallbackAPIVersion"):
            # paho-mqtt 2.x (newer Debian): keep the 1.x callback signatures.
            kw["callback_api_version"] = mqtt.CallbackAPIVersion.VERSION1
        if self.v5:
            self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5, **kw)
        else:
            self.c = mqtt.Client(client_id=client_id, clean_session=not persistent, protocol=mqtt.MQTTv311, **kw)
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.messages = queue.Queue()
        self.disconnects = queue.Queue()
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.c.on_disconnect = self._on_disconnect

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack.put((bool(flags.get("session present")), code(rc)))

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        granted = [code(g) for g in granted]
        if self.announce_subscribed:
            # Printed on the network thread, so before any message that
            # follows the SUBACK (a retained one, say).
            emit({"event": "subscribed", "granted": granted})
        self.subacks.put(granted)

    def _on_message(self, client, userdata, m):
        d = {"event": "message", "topic": m.topic, "payload": m.payload.decode("utf-8", "replace"),
             "qos": m.qos, "retain": 1 if m.retain else 0}
        props = message_properties(m)
        if props:
            d["properties"] = props
        if self.emit_messages:
            emit(d)
        self.messages.put(d)

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnects.put(code(rc))

    def connect(self):
        """Connects, starts the network thread and returns (sessionPresent, rc)."""
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            if self.persistent:
                props.SessionExpiryInterval = SESSION_EXPIRY
            self.c.connect(self.host, self.port, keepalive=30, clean_start=not self.persistent, properties=props)
        else:
            self.c.connect(self.host, self.port, keepalive=30)
        self.c.loop_start()
        try:
            sp, rc = self.connack.get(timeout=TIMEOUT)
        except queue.Empty:
            fail("no CONNACK within %ss" % TIMEOUT)
        if rc != 0:
            fail("CONNACK reason code %d" % rc)
        return sp, rc

    def subscribe(self, filters, qos):
        rc, _ = self.c.subscribe([(f, qos) for f in filters])
        if rc != mqtt.MQTT_ERR_SUCCESS:
            fail("subscribe: %s" % mqtt.error_string(rc))
        try:
            granted = self.subacks.get(timeout=TIMEOUT)
        except queue.Empty:
            fail("no SUBACK within %ss" % TIMEOUT)
        return granted

    def publish(self, topic, payload, qos, retain=False):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=TIMEOUT)
        if not info.is_published():
            fail("publish %s qos %d not completed within %ss" % (topic, qos, TIMEOUT))

    def next_message(self):
        try:
            return self.messages.get(timeout=TIMEOUT)
        except queue.Empty:
            fail("no message within %ss" % TIMEOUT)

    def close(self):
        """Sends DISCONNECT (0x00) and stops the network thread."""
        self.c.disconnect()
        self.c.loop_stop()


def scenario_connect(host, port, version):
    c = Conn(host, port, version, "py-connect-" + version)
    sp, rc = c.connect()
    emit({"event": "connack", "sessionPresent": sp, "reasonCode": rc})
    c.close()


def scenario_wildcards(host, port, version):
    sub = Conn(host, port, version, "py-wild-sub-" + version)
    sub.connect()
    emit({"event": "suback", "granted": sub.subscribe(WILD_FILTERS, 1)})
    pub = Conn(host, port, version, "py-wild-pub-" + version, emit_messages=False)
    pub.connect()
    for t in WILD_PUBLISHED:
        pub.publish(t, "x", 1)
    while sub.next_message()["topic"] != WILD_END:
        pass
    pub.close()
    sub.close()


def scenario_qos(host, port, version):
    sub = Conn(host, port, version, "py-qos-sub-" + version)
    sub.connect()
    emit({"event": "suback", "granted": sub.subscribe([QOS_TOPIC], 2)})
    pub = Conn(host, port, version, "py-qos-pub-" + version, emit_messages=False)
    pub.connect()
    for q in range(3):
        pub.publish(QOS_TOPIC, "q%d" % q, q)
    for _ in range(3):
        sub.next_message()
    pub.close()
    sub.close()


def scenario_retained(host, port, version):
    pub = Conn(host, port, version, "py-ret-pub-" + version, emit_messages=False)
    pub.connect()
    pub.publish("r/1", "one", 1, retain=True)
    pub.publish("r/2", "two", 1, retain=True)
    sub = Conn(host, port, version, "py-ret-sub-" + version)
    sub.connect()
    emit({"event": "suback", "granted": sub.subscribe([RET_FILTER], 1)})
    sub.next_message()
    sub.next_message()
    pub.publish("r/1", "live", 1)
    sub.next_message()
    pub.close()
    sub.close()


def scenario_session(host, port, version):
    cid = "py-sess-" + version
    sub = Conn(host, port, version, cid, persistent=True)
    sub.connect()
    emit({"event": "suback", "granted": sub.subscribe([SESS_TOPIC], 1)})
    sub.close()
    pub = Conn(host, port, version, "py-sess-pub-" + version, emit_messages=False)
    pub.connect()
    for p in SESS_PAYLOADS:
        pub.publish(SESS_TOPIC, p, 1)
    sub = Conn(host, port, version, cid, persistent=True)
    sp, rc = sub.connect()
    emit({"event": "connack", "sessionPresent": sp, "reasonCode": rc})
    for _ in SESS_PAYLOADS:
        sub.next_message()
    sub.close()
    pub.close()


def role_sub(host, port, version, client_id, *filters):
    c = Conn(host, port, version, client_id)
    c.announce_subscribed = True
    c.connect()
    c.subscribe(list(filters), 1)
    while True:  # until killed by the test
        time.sleep(3600)


def role_will_client(host, port, version, client_id, topic, payload, delay):
    c = Conn(host, port, version, client_id)
    if c.v5:
        props = Properties(PacketTypes.WILLMESSAGE)
        props.WillDelayInterval = int(delay)
        c.c.will_set(topic, payload, qos=1, properties=props)
        c.persistent = True  # Session Expiry 60, so the delay applies
    else:
        c.c.will_set(topic, payload, qos=1)
    sp, rc = c.connect()
    emit({"event": "connected", "sessionPresent": sp, "reasonCode": rc})
    while True:  # until killed by the test
        time.sleep(3600)


def role_takeover_first(host, port, version, client_id, topic):
    if version != "5":
        fail("takeover-first needs MQTT 5")
    c = Conn(host, port, version, client_id, persistent=True)
    sp, rc = c.connect()
    emit({"event": "connack", "sessionPresent": sp, "reasonCode": rc})
    c.announce_subscribed = True
    c.subscribe([topic], 1)
    try:
        rc = c.disconnects.get(timeout=60)
    except queue.Empty:
        fail("not disconnected within 60s")
    emit({"event": "disconnect", "reasonCode": rc})
    c.c.disconnect()  # no reconnect
    c.c.loop_stop()


SCENARIOS = {
    "connect": scenario_connect,
    "wildcards": scenario_wildcards,
    "qos": scenario_qos,
    "retained": scenario_retained,
    "session": scenario_session,
    "sub": role_sub,
    "will-client": role_will_client,
    "takeover-first": role_takeover_first,
}


def main(argv):
    if len(argv) < 5 or argv[3] not in SCENARIOS or argv[4] not in ("311", "5"):
        sys.stderr.write(__doc__)
        return 2
    host, port, name, version = argv[1], int(argv[2]), argv[3], argv[4]
    SCENARIOS[name](host, port, version, *argv[5:])
    emit({"event": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
