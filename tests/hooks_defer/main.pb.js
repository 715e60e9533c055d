/// Record request hooks whose handlers end with e.next() (the "tail" collection) beside the
/// same handlers with something after e.next() (the "blocking" collection), as
/// tests/hooks_defer.rs drives them: the first kind's write is made after the JS dispatch,
/// the second's inside e.next(). Both must answer alike.

onRecordCreateRequest((e) => {
  console.log("reached " + e.record.get("title"))
  e.response.header().set("X-Hooked", "create")
  if (e.record.get("title") === "forbidden") {
    throw new BadRequestError("no forbidden titles")
  }
  if (e.record.get("title") === "answered") {
    e.json(201, { answered: true })
  }
  e.record.set("title", e.record.get("title") + " (hooked)")
  e.next()
}, "tail")

onRecordCreateRequest((e) => {
  console.log("reached " + e.record.get("title"))
  e.response.header().set("X-Hooked", "create")
  if (e.record.get("title") === "forbidden") {
    throw new BadRequestError("no forbidden titles")
  }
  if (e.record.get("title") === "answered") {
    e.json(201, { answered: true })
  }
  e.record.set("title", e.record.get("title") + " (hooked)")
  e.next()
  $app.store().set("after", e.record.id)
}, "blocking")

onRecordUpdateRequest((e) => {
  e.record.set("n", e.record.getInt("n") * 10)
  return e.next()
}, "tail")

onRecordUpdateRequest((e) => {
  e.record.set("n", e.record.getInt("n") * 10)
  e.next()
  $app.store().set("after", e.record.id)
}, "blocking")

onRecordDeleteRequest((e) => {
  if (e.record.get("title") === "keep (hooked)") {
    throw new ForbiddenError("kept")
  }
  e.next()
}, "tail")

onRecordDeleteRequest((e) => {
  if (e.record.get("title") === "keep (hooked)") {
    throw new ForbiddenError("kept")
  }
  e.next()
  $app.store().set("after", e.record.id)
}, "blocking")

// Headers set before a throw stay on the error answer, as on PocketBase's.
routerAdd("GET", "/defer/refused", (e) => {
  e.response.header().set("X-Hooked", "route")
  throw new BadRequestError("nope")
})

// e.request's members, each built on first use (PocketBase 0.40.6 answers the same).
routerAdd("POST", "/defer/request/{id}", (e) => {
  const r = e.request
  r.setPathValue("id", r.pathValue("id") + "!")
  return e.json(200, {
    method: r.method,
    host: r.host,
    uri: r.requestURI,
    length: r.contentLength,
    header: r.header.get("X-Probe"),
    path: r.url.path,
    query: r.url.query().get("q"),
    id: r.pathValue("id"),
    body: toString(r.body),
    remote: typeof r.remoteAddr,
  })
})

// The same for an auth flow's request hook.
onRecordAuthWithPasswordRequest((e) => {
  e.response.header().set("X-Hooked", "auth")
  throw new BadRequestError("no sign-ins")
}, "users")
