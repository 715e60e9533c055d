// Custom realtime topics: PocketBase's documented loop over the broker's clients, and
// vaultbase's broadcast extension.
routerAdd("POST", "/notify/{topic}", (e) => {
  const topic = e.request.pathValue("topic");
  const message = new SubscriptionMessage({ name: topic, data: JSON.stringify({ hello: "world", from: "loop" }) });
  const clients = $app.subscriptionsBroker().clients();
  let sent = 0;
  for (let clientId in clients) {
    if (clients[clientId].hasSubscription(topic)) {
      clients[clientId].send(message);
      sent++;
    }
  }
  e.json(200, { sent, total: Object.keys(clients).length });
});

routerAdd("POST", "/broadcast/{topic}", (e) => {
  $app.subscriptionsBroker().broadcast(e.request.pathValue("topic"), { hello: "broadcast" });
  e.json(200, { ok: true });
});

// Request hooks: a throw answers with its status; e.subscriptions may be changed.
onRealtimeConnectRequest((e) => {
  if (e.request.url.query().get("deny") === "1") throw new BadRequestError("connections refused here");
  e.next();
});

onRealtimeSubscribeRequest((e) => {
  if (e.subscriptions.includes("forbidden")) throw new ForbiddenError("not that topic");
  e.subscriptions = e.subscriptions.map((s) => (s === "alias" ? "example" : s));
  e.next();
});

// Every message to a client: may be changed, or dropped by not calling e.next().
onRealtimeMessageSend((e) => {
  if (e.message.name === "secret") return;
  const data = JSON.parse(e.message.data);
  data.seenBy = e.client.id().length === 40 ? "hook" : "?";
  e.message.data = JSON.stringify(data);
  e.next();
});
