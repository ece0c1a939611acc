'use strict'
// MQTT.js driver for Vigil's interop tests (test/interop/drivers_test.go).
//
// Usage: node interop.js BROKER_URL SCENARIO [PROTOCOL_VERSION]
//
// PROTOCOL_VERSION is 4 (MQTT 3.1.1) or 5 (the default). Prints one JSON
// object a line, which the Go test asserts:
//   {"event":"connack","sessionPresent":bool,"reasonCode":int}
//   {"event":"suback","granted":[int...]}
//   {"event":"message","topic":str,"payload":str,"qos":int,"retain":0|1}
//   {"event":"done"}
//   {"event":"error","error":str}             (then exit status 1)
// Scenarios (values as in test/interop/scenarios_test.go):
//   connect, wildcards, qos, retained, session, topicAlias (5 only)

const mqtt = require('mqtt')

const TIMEOUT = 30000
const SESSION_EXPIRY = 60

const WILD_FILTERS = ['w/+/x', 'w/y/#']
const WILD_PUBLISHED = ['w/a/x', 'w/a/z', 'w/b/x', 'w/y/b/c', 'w/y', 'w/z/x/y', 'w/y/end']
const WILD_END = 'w/y/end'
const QOS_TOPIC = 'q/t'
const RET_FILTER = 'r/+'
const SESS_TOPIC = 's/t'
const SESS_PAYLOADS = ['m1', 'm2', 'm3']
const ALIAS_TOPIC = 'alias/a/rather/long/topic/name'
const ALIAS_PAYLOADS = ['t1', 't2', 't3', 't4']

const [url, scenario, versionArg] = process.argv.slice(2)
const version = Number(versionArg || 5)

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function fail (err) {
  emit({ event: 'error', error: String((err && err.stack) || err) })
  process.exit(1)
}

// Conn is one MQTT.js client that does not reconnect by itself.
class Conn {
  constructor (clientId, { persistent = false, emitMessages = true, extra = {} } = {}) {
    this.clientId = clientId
    this.persistent = persistent
    this.emitMessages = emitMessages
    this.extra = extra
    this.queue = []
    this.waiting = null
  }

  // connect resolves with the CONNACK packet.
  connect () {
    const opts = {
      clientId: this.clientId,
      protocolVersion: version,
      clean: !this.persistent,
      keepalive: 30,
      reconnectPeriod: 0,
      connectTimeout: TIMEOUT
    }
    if (version === 5 && this.persistent) {
      opts.properties = { sessionExpiryInterval: SESSION_EXPIRY }
    }
    Object.assign(opts, this.extra)
    this.c = mqtt.connect(url, opts)
    // Attached before the CONNACK: a resumed session's messages follow it.
    this.c.on('message', (topic, payload, packet) => {
      const m = { event: 'message', topic, payload: payload.toString('utf8'), qos: packet.qos, retain: packet.retain ? 1 : 0 }
      if (this.emitMessages) emit(m)
      if (this.waiting) {
        const w = this.waiting
        this.waiting = null
        w(m)
      } else {
        this.queue.push(m)
      }
    })
    return new Promise((resolve, reject) => {
      this.c.once('connect', resolve)
      this.c.once('error', reject)
    })
  }

  async subscribe (filters, qos) {
    const granted = await this.c.subscribeAsync(filters, { qos })
    return granted.map((g) => g.qos)
  }

  // publish resolves when the QoS flow is complete (PUBACK or PUBCOMP).
  publish (topic, payload, qos, retain = false) {
    return this.c.publishAsync(topic, payload, { qos, retain })
  }

  nextMessage () {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift())
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message within ${TIMEOUT} ms`)), TIMEOUT)
      this.waiting = (m) => { clearTimeout(timer); resolve(m) }
    })
  }

  // close sends DISCONNECT (0x00) and closes the connection.
  close () {
    return this.c.endAsync()
  }
}

function connackEvent (ack) {
  return { event: 'connack', sessionPresent: !!ack.sessionPresent, reasonCode: ack.reasonCode || ack.returnCode || 0 }
}

const scenarios = {
  async connect () {
    const c = new Conn(`js-connect-${version}`)
    emit(connackEvent(await c.connect()))
    await c.close()
  },

  async wildcards () {
    const sub = new Conn(`js-wild-sub-${version}`)
    await sub.connect()
    emit({ event: 'suback', granted: await sub.subscribe(WILD_FILTERS, 1) })
    const pub = new Conn(`js-wild-pub-${version}`, { emitMessages: false })
    await pub.connect()
    for (const t of WILD_PUBLISHED) await pub.publish(t, 'x', 1)
    while ((await sub.nextMessage()).topic !== WILD_END);
    await pub.close()
    await sub.close()
  },

  async qos () {
    const sub = new Conn(`js-qos-sub-${version}`)
    await sub.connect()
    emit({ event: 'suback', granted: await sub.subscribe([QOS_TOPIC], 2) })
    const pub = new Conn(`js-qos-pub-${version}`, { emitMessages: false })
    await pub.connect()
    for (const q of [0, 1, 2]) await pub.publish(QOS_TOPIC, `q${q}`, q)
    for (let i = 0; i < 3; i++) await sub.nextMessage()
    await pub.close()
    await sub.close()
  },

  async retained () {
    const pub = new Conn(`js-ret-pub-${version}`, { emitMessages: false })
    await pub.connect()
    await pub.publish('r/1', 'one', 1, true)
    await pub.publish('r/2', 'two', 1, true)
    const sub = new Conn(`js-ret-sub-${version}`)
    await sub.connect()
    emit({ event: 'suback', granted: await sub.subscribe([RET_FILTER], 1) })
    await sub.nextMessage()
    await sub.nextMessage()
    await pub.publish('r/1', 'live', 1)
    await sub.nextMessage()
    await pub.close()
    await sub.close()
  },

  // topicAlias (5 only): the publisher lets MQTT.js assign Topic Aliases
  // (the first PUBLISH sets one, the next ones send an empty topic); the
  // subscriber accepts aliases from the server (Topic Alias Maximum 10).
  // The subscriber must see the full topic on every message.
  async topicAlias () {
    const sub = new Conn(`js-alias-sub-${version}`, { extra: { properties: { topicAliasMaximum: 10 } } })
    await sub.connect()
    emit({ event: 'suback', granted: await sub.subscribe([ALIAS_TOPIC], 1) })
    const pub = new Conn(`js-alias-pub-${version}`, { emitMessages: false, extra: { autoAssignTopicAlias: true } })
    const ack = await pub.connect()
    emit({ event: 'pubconnack', topicAliasMaximum: (ack.properties && ack.properties.topicAliasMaximum) || 0 })
    // Report the PUBLISH packets as on the wire, to show aliases were used.
    const wire = (dir) => (packet) => {
      if (packet.cmd !== 'publish') return
      const alias = (packet.properties && packet.properties.topicAlias) || 0
      emit({ event: dir, wireTopic: packet.topic, alias })
    }
    pub.c.on('packetsend', wire('sent'))
    sub.c.on('packetreceive', wire('received'))
    for (const p of ALIAS_PAYLOADS) await pub.publish(ALIAS_TOPIC, p, 1)
    for (let i = 0; i < ALIAS_PAYLOADS.length; i++) await sub.nextMessage()
    await pub.close()
    await sub.close()
  },

  async session () {
    const id = `js-sess-${version}`
    let sub = new Conn(id, { persistent: true })
    await sub.connect()
    emit({ event: 'suback', granted: await sub.subscribe([SESS_TOPIC], 1) })
    await sub.close()
    const pub = new Conn(`js-sess-pub-${version}`, { emitMessages: false })
    await pub.connect()
    for (const p of SESS_PAYLOADS) await pub.publish(SESS_TOPIC, p, 1)
    sub = new Conn(id, { persistent: true })
    emit(connackEvent(await sub.connect()))
    for (let i = 0; i < SESS_PAYLOADS.length; i++) await sub.nextMessage()
    await sub.close()
    await pub.close()
  }
}

async function main () {
  if (!url || !scenarios[scenario] || (version !== 4 && version !== 5)) {
    process.stderr.write('usage: node interop.js BROKER_URL connect|wildcards|qos|retained|session|topicAlias [4|5]\n')
    process.exit(2)
  }
  // A watchdog: the scenario itself is bounded, and so is the process.
  setTimeout(() => fail(new Error('scenario did not finish in 60 s')), 60000).unref()
  await scenarios[scenario]()
  emit({ event: 'done' })
}

main().catch(fail)
