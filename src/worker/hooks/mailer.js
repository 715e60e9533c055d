// Mail for hooks: PocketBase's `MailerMessage` and `$app.newMailClient().send(msg)`, which
// runs the `onMailerSend` chain (natives `mailSend`). Evaluated after prelude.js.
(function (g) {
  "use strict";
  const vb = g.__vb;
  const N = g.__native;

  function address(a) {
    if (a === null || a === undefined) return { address: "", name: "" };
    if (typeof a === "string") return { address: a, name: "" };
    return { address: String(a.address ?? a.Address ?? ""), name: String(a.name ?? a.Name ?? "") };
  }
  function addresses(list) {
    if (list === null || list === undefined) return [];
    return (Array.isArray(list) ? list : [list]).map(address);
  }

  // Plain, mutable properties, as goja shows the Go struct.
  class MailerMessage {
    constructor(data) {
      data = data || {};
      this.from = address(data.from);
      this.to = addresses(data.to);
      this.cc = addresses(data.cc);
      this.bcc = addresses(data.bcc);
      this.subject = String(data.subject ?? "");
      this.html = String(data.html ?? "");
      this.text = String(data.text ?? "");
      this.headers = Object.assign({}, data.headers || {});
      this.attachments = Object.assign({}, data.attachments || {});
    }
  }
  g.MailerMessage = MailerMessage;

  // The message as the Rust side reads it back after the chain (handlers may have replaced
  // fields with plain values or arrays).
  vb.mailerMessageJson = function (m) {
    m = m || {};
    const headers = {};
    for (const [k, v] of Object.entries(m.headers || {})) headers[k] = String(v);
    return JSON.stringify({
      from: address(m.from), to: addresses(m.to), cc: addresses(m.cc), bcc: addresses(m.bcc),
      subject: String(m.subject ?? ""), html: String(m.html ?? ""), text: String(m.text ?? ""), headers,
    });
  };
  vb.makeMailerMessage = function (json) {
    return new MailerMessage(JSON.parse(json));
  };

  const mailClient = { send: (msg) => { N.mailSend(vb.mailerMessageJson(msg)); } };
  vb.appMembers.newMailClient = function () { return mailClient; };
})(globalThis);
