// Mailer hooks: onMailerSend around every mail, onMailerRecord*Send before the system ones.
onMailerSend((e) => {
  if (e.message.subject.includes("SKIP")) return; // no e.next(): not delivered
  e.message.subject = "[hooked] " + e.message.subject;
  e.next();
});

onMailerRecordVerificationSend((e) => {
  e.message.html += "<p>verify " + e.record.email() + " token:" + (e.meta.token ? "yes" : "no") + "</p>";
  e.next();
}, "users");

routerAdd("POST", "/send-custom", (e) => {
  const body = e.requestInfo().body;
  const msg = new MailerMessage({
    from: { address: "app@example.com", name: "App" },
    to: [{ address: body.to }],
    subject: body.subject,
    html: "<b>hi</b>",
    text: "hi",
  });
  $app.newMailClient().send(msg);
  e.json(200, { sent: true });
});
