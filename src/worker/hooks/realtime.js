// Custom realtime messages for hooks: PocketBase's `SubscriptionMessage` and
// `$app.subscriptionsBroker()`, whose clients are every worker's (natives rt*). Evaluated
// after prelude.js.
(function (g) {
  "use strict";
  const vb = g.__vb;
  const N = g.__native;

  function dataText(d) {
    if (d === null || d === undefined) return "";
    if (typeof d === "string") return d;
    if (Array.isArray(d) || d instanceof Uint8Array) return N.utf8Decode(Array.from(d));
    return JSON.stringify(d);
  }

  class SubscriptionMessage {
    constructor(data) {
      data = data || {};
      this.name = String(data.name ?? "");
      this.data = data.data ?? "";
    }
  }
  g.SubscriptionMessage = SubscriptionMessage;

  function matches(raw, topic) {
    return raw === topic || (raw.startsWith(topic) && raw[topic.length] === "?");
  }

  function makeClient(c) {
    const store = {};
    let discarded = false;
    return {
      id: () => c.id,
      channel: () => null,
      subscriptions: (...prefixes) => {
        const out = {};
        for (const s of c.subscriptions) {
          if (prefixes.length === 0 || prefixes.some((p) => s.startsWith(p))) out[s] = {};
        }
        return out;
      },
      hasSubscription: (topic) => c.subscriptions.some((s) => matches(s, String(topic))),
      send: (msg) => { N.rtSend(c.id, String(msg && msg.name || ""), dataText(msg && msg.data)); },
      get: (key) => {
        if (key === "auth") return c.auth ? vb.makeRecord(c.auth.record, c.auth.collection) : null;
        return store[key] === undefined ? null : store[key];
      },
      set: (key, value) => { store[key] = value; },
      unset: (key) => { delete store[key]; },
      discard: () => { discarded = true; },
      isDiscarded: () => discarded,
    };
  }

  vb.subscriptionMessageJson = function (m) {
    return JSON.stringify({ name: String((m && m.name) ?? ""), data: dataText(m && m.data) });
  };
  vb.makeRealtimeClient = function (json) { return makeClient(JSON.parse(json)); };

  const broker = {
    // Every client of every worker, keyed by id (one bus round trip in a cluster).
    clients: () => {
      const out = {};
      for (const c of JSON.parse(N.rtClients())) out[c.id] = makeClient(c);
      return out;
    },
    clientById: (id) => {
      const c = broker.clients()[String(id)];
      if (!c) throw new Error("No client associated with connection ID " + id);
      return c;
    },
    totalClients: () => Object.keys(broker.clients()).length,
    // vaultbase's extension: every subscriber of `topic`, on every worker, in one call.
    broadcast: (topic, data) => { N.rtBroadcast(String(topic), dataText(data)); },
  };
  vb.appMembers.subscriptionsBroker = function () { return broker; };
})(globalThis);
