// vaultbase: TypeScript declarations for the pb_hooks API it supports (a subset of
// PocketBase's JSVM). Written into the data dir at start; reference it from a hook file with
//   /// <reference path="../vaultbase_data/types.d.ts" />
// Anything not declared here is not supported: `$app.x` / `$os.x` members that are missing
// throw a TypeError saying so.

declare var __hooks: string

// ---------------------------------------------------------------- registration (top level only)

declare function routerAdd(method: string, path: string, handler: (e: RequestEvent) => void, ...middlewares: Array<((e: RequestEvent) => void) | Middleware>): void
declare function routerUse(...middlewares: Array<((e: RequestEvent) => void) | Middleware>): void
declare function cronAdd(jobId: string, cronExpr: string, handler: () => void): void
declare function cronRemove(jobId: string): void
declare function onBootstrap(handler: (e: BootstrapEvent) => void): void
declare function onTerminate(handler: (e: BootstrapEvent) => void): void

interface BootstrapEvent {
  app: App
  next(): void
}

declare class Middleware {
  constructor(func: (e: RequestEvent) => void, priority?: number, id?: string)
  func: (e: RequestEvent) => void
  priority: number
  id: string
}

// ---------------------------------------------------------------- request event

interface RequestInfo {
  query: { [key: string]: string }
  headers: { [key: string]: string }
  body: { [key: string]: any }
  auth: any
  method: string
  context: string
  hasSuperuserAuth(): boolean
}

interface RequestEvent {
  app: App
  auth: any
  request: {
    method: string
    host: string
    remoteAddr: string
    requestURI: string
    contentLength: number
    header: { get(name: string): string; values(name: string): string[]; has(name: string): boolean }
    url: { path: string; rawQuery: string; query(): { get(key: string): string; has(key: string): boolean; all(key: string): string[] }; string(): string }
    pathValue(name: string): string
    body: any
  }
  response: { header(): { set(k: string, v: string): void; add(k: string, v: string): void; get(k: string): string; del(k: string): void } }
  next(): void
  json(status: number, data: any): void
  string(status: number, s: string): void
  html(status: number, s: string): void
  xml(status: number, s: string): void
  noContent(status: number): void
  redirect(status: number, url: string): void
  blob(status: number, contentType: string, bytes: number[] | string): void
  requestInfo(): RequestInfo
  hasSuperuserAuth(): boolean
  isTLS(): boolean
  realIP(): string
  remoteIP(): string
  set(key: string, value: any): void
  get(key: string): any
  bindBody<T>(target: T): T
  error(status: number, message: string, data?: any): ApiError
  badRequestError(message?: string, data?: any): ApiError
  notFoundError(message?: string, data?: any): ApiError
  forbiddenError(message?: string, data?: any): ApiError
  unauthorizedError(message?: string, data?: any): ApiError
  tooManyRequestsError(message?: string, data?: any): ApiError
  internalServerError(message?: string, data?: any): ApiError
}

// ---------------------------------------------------------------- errors

declare class ApiError extends Error {
  constructor(status?: number, message?: string, data?: any)
  status: number
  message: string
  data: { [key: string]: any }
}
declare class BadRequestError extends ApiError { constructor(message?: string, data?: any) }
declare class UnauthorizedError extends ApiError { constructor(message?: string, data?: any) }
declare class ForbiddenError extends ApiError { constructor(message?: string, data?: any) }
declare class NotFoundError extends ApiError { constructor(message?: string, data?: any) }
declare class TooManyRequestsError extends ApiError { constructor(message?: string, data?: any) }
declare class InternalServerError extends ApiError { constructor(message?: string, data?: any) }
declare class ValidationError { constructor(code: string, message: string); code: string; message: string }

// ---------------------------------------------------------------- $apis

declare namespace $apis {
  function requireAuth(...collections: string[]): Middleware
  function requireSuperuserAuth(): Middleware
  function requireGuestOnly(): Middleware
  function requireSuperuserOrOwnerAuth(ownerIdPathParam?: string): Middleware
  function bodyLimit(bytes: number): Middleware
  function gzip(): Middleware
  function skipSuccessActivityLog(): Middleware
  /** A route handler serving the files of `dir` (path value "path"); `indexFallback` answers unknown paths with dir/index.html. */
  function static(dir: string, indexFallback?: boolean): (e: RequestEvent) => void
}

// ---------------------------------------------------------------- $app

interface Logger {
  debug(msg: string, ...keyValues: any[]): void
  info(msg: string, ...keyValues: any[]): void
  warn(msg: string, ...keyValues: any[]): void
  error(msg: string, ...keyValues: any[]): void
  with(...keyValues: any[]): Logger
}
interface Store {
  get(key: string): any
  set(key: string, value: any): void
  has(key: string): boolean
  remove(key: string): void
  removeAll(): void
  getAll(): { [key: string]: any }
  length(): number
  getOrSet(key: string, fn: () => any): any
}
interface App {
  logger(): Logger
  /** One store per worker process; values are copied through JSON. */
  store(): Store
  isDev(): boolean
}
declare var $app: App

// ---------------------------------------------------------------- utilities

declare function toString(v: any): string
declare function toBytes(v: any): number[]
declare function sleep(ms: number): void
declare function require(path: string): any
declare function arrayOf<T>(model: T): T[]
declare function unmarshal(data: any, dst: any): void
declare class DynamicModel { constructor(shape: { [key: string]: any }); [key: string]: any }
declare class DateTime {
  constructor(date?: string | number)
  string(): string
  unix(): number
  isZero(): boolean
  time(): Date
  add(ms: number): DateTime
  addDate(years: number, months: number, days: number): DateTime
  before(o: DateTime): boolean
  after(o: DateTime): boolean
  equal(o: DateTime): boolean
  compare(o: DateTime): number
}

declare namespace $security {
  function randomString(length: number): string
  function randomStringWithAlphabet(length: number, alphabet: string): string
  function pseudorandomString(length: number): string
  function pseudorandomStringWithAlphabet(length: number, alphabet: string): string
  function md5(s: string): string
  function sha256(s: string): string
  function sha512(s: string): string
  function hs256(s: string, key: string): string
  function hs512(s: string, key: string): string
  function equal(a: string, b: string): boolean
  function createJWT(payload: { [key: string]: any }, signingKey: string, secDuration: number): string
  function parseJWT(token: string, verificationKey: string): { [key: string]: any }
  function parseUnverifiedJWT(token: string): { [key: string]: any }
  /** AES-GCM with a 32 (or 16) byte key; base64 of nonce + sealed data, as PocketBase. */
  function encrypt(data: string, key: string): string
  function decrypt(cipherText: string, key: string): string
}

declare namespace $os {
  function getenv(key: string): string
  function readFile(path: string): number[]
  function writeFile(path: string, data: string | number[], perm?: number): void
  function readDir(path: string): Array<{ name(): string; isDir(): boolean }>
  function remove(path: string): void
  function removeAll(path: string): void
  function mkdir(path: string, perm?: number): void
  function mkdirAll(path: string, perm?: number): void
  function tempDir(): string
  function getwd(): string
  /** Refused unless VAULTBASE_HOOKS_ALLOW_EXEC=1. */
  function cmd(name: string, ...args: string[]): { output(): number[]; combinedOutput(): number[]; run(): void }
}

declare namespace $http {
  function send(config: {
    url: string
    method?: string
    body?: string
    headers?: { [key: string]: string }
    /** Seconds; default 120. */
    timeout?: number
  }): {
    statusCode: number
    headers: { [key: string]: string[] }
    cookies: { [key: string]: { name: string; value: string; raw: string } }
    body: number[]
    json: any
    raw: string
  }
}

// ---------------------------------------------------------------- records and data (jsdata)
// Declared as separate blocks: TypeScript merges them into the interfaces above.

declare class Field {
  constructor(data?: { [key: string]: any })
  id: string
  name: string
  type: string
  hidden: boolean
  system: boolean
  required: boolean
  [option: string]: any
}
interface FieldsList extends Array<Field> {
  getByName(name: string): Field | null
  getById(id: string): Field | null
  fieldNames(): string[]
  add(...fields: Field[]): void
  addAt(pos: number, ...fields: Field[]): void
  removeById(id: string): void
  removeByName(name: string): void
}
declare class Collection {
  constructor(data?: { [key: string]: any })
  id: string
  name: string
  type: "base" | "auth" | "view"
  system: boolean
  /** null: superusers only; "": everyone. */
  listRule: string | null
  viewRule: string | null
  createRule: string | null
  updateRule: string | null
  deleteRule: string | null
  indexes: string[]
  fields: FieldsList
  isAuth(): boolean
  isBase(): boolean
  isView(): boolean
  tableName(): string
  addIndex(name: string, unique: boolean, columns: string, where?: string): void
  removeIndex(name: string): void
  getIndex(name: string): string
}
/** A json field's value as PocketBase gives it: bytes whose String() is the JSON text. */
interface JSONRaw extends Array<number> { toString(): string }
declare class Record {
  constructor(collection: Collection, data?: { [key: string]: any })
  id: string
  collection(): Collection
  tableName(): string
  isNew(): boolean
  /** text/number/bool as such; select/relation/file arrays when multiple; date → DateTime; json → JSONRaw; unknown → null. */
  get(field: string): any
  /** Modifiers: "field+", "+field", "field-"; "field:autogenerate". */
  set(field: string, value: any): void
  load(data: { [key: string]: any }): void
  getString(field: string): string
  getInt(field: string): number
  getFloat(field: string): number
  getBool(field: string): boolean
  getDateTime(field: string): DateTime
  getStringSlice(field: string): string[]
  original(): Record
  fresh(): Record
  clone(): Record
  fieldsData(): { [key: string]: any }
  customData(): { [key: string]: any }
  hide(...fields: string[]): Record
  unhide(...fields: string[]): Record
  withCustomData(on: boolean): Record
  ignoreEmailVisibility(on: boolean): Record
  expand(): { [rel: string]: any }
  setExpand(expand: { [rel: string]: any }): void
  mergeExpand(expand: { [rel: string]: any }): void
  expandedOne(rel: string): Record | null
  expandedAll(rel: string): Record[]
  /** The API JSON (also what JSON.stringify(record) gives). */
  publicExport(): { [key: string]: any }
  email(): string
  setEmail(email: string): void
  emailVisibility(): boolean
  setEmailVisibility(v: boolean): void
  verified(): boolean
  setVerified(v: boolean): void
  tokenKey(): string
  setTokenKey(key: string): void
  refreshTokenKey(): void
  setPassword(password: string): void
  setRandomPassword(): string
  validatePassword(password: string): boolean
  isSuperuser(): boolean
  newAuthToken(): string
  newStaticAuthToken(seconds: number): string
  newVerificationToken(): string
  newPasswordResetToken(): string
  newEmailChangeToken(newEmail: string): string
  newFileToken(): string
}

/** A `$dbx` expression: SQL with `{:name}` parameters. */
interface DbxExpression { sql: string; params: { [key: string]: any } }
interface Dbx {
  exp(sql: string, params?: { [key: string]: any }): DbxExpression
  hashExp(values: { [column: string]: any }): DbxExpression
  and(...exps: DbxExpression[]): DbxExpression
  or(...exps: DbxExpression[]): DbxExpression
  not(exp: DbxExpression): DbxExpression
  exists(exp: DbxExpression): DbxExpression
  notExists(exp: DbxExpression): DbxExpression
  in(column: string, ...values: any[]): DbxExpression
  notIn(column: string, ...values: any[]): DbxExpression
  like(column: string, ...values: string[]): DbxExpression
  notLike(column: string, ...values: string[]): DbxExpression
  orLike(column: string, ...values: string[]): DbxExpression
  orNotLike(column: string, ...values: string[]): DbxExpression
  between(column: string, from: any, to: any): DbxExpression
  notBetween(column: string, from: any, to: any): DbxExpression
}
declare var $dbx: Dbx
interface DbQuery {
  bind(params: { [key: string]: any }): DbQuery
  execute(): { rowsAffected(): number }
  one<T>(model: T): T
  all<T>(models: T[]): T[]
  column(target?: any[]): any[]
}
interface RecordQuery {
  where(exp: DbxExpression): RecordQuery
  andWhere(exp: DbxExpression): RecordQuery
  orderBy(...columns: string[]): RecordQuery
  limit(n: number): RecordQuery
  offset(n: number): RecordQuery
  one(record?: Record): Record
  all(records?: Record[]): Record[]
}
interface App {
  /** Missing: throws a 404 ApiError ("The requested resource wasn't found."). */
  findCollectionByNameOrId(nameOrId: string): Collection
  findAllCollections(...types: string[]): Collection[]
  findRecordById(collection: string | Collection, id: string): Record
  findRecordsByIds(collection: string | Collection, ids: string[]): Record[]
  /** `filter` in PocketBase's filter syntax with `{:name}` placeholders from `params`. */
  findRecordsByFilter(collection: string | Collection, filter: string, sort?: string, limit?: number, offset?: number, params?: { [key: string]: any }): Record[]
  findFirstRecordByFilter(collection: string | Collection, filter: string, params?: { [key: string]: any }): Record
  findFirstRecordByData(collection: string | Collection, field: string, value: any): Record
  findAllRecords(collection: string | Collection, ...exps: DbxExpression[]): Record[]
  countRecords(collection: string | Collection, ...exps: DbxExpression[]): number
  findAuthRecordByEmail(collection: string | Collection, email: string): Record
  findAuthRecordByToken(token: string, ...types: string[]): Record
  recordQuery(collection: string | Collection): RecordQuery
  /** Validates, fires the model hooks (onRecordCreate/Update, …Execute, after-success after the commit). */
  save(record: Record): void
  saveNoValidate(record: Record): void
  delete(record: Record): void
  /** A throw rolls everything back and is thrown on; after-success hooks wait for the commit. */
  runInTransaction(fn: (txApp: App) => void): void
  db(): { newQuery(sql: string): DbQuery }
  settings(): { meta: { appName: string; appURL: string; senderName: string; senderAddress: string }; [key: string]: any }
  expandRecord(record: Record, expands: string[], fetchFunc?: any): { [path: string]: any }
  expandRecords(records: Record[], expands: string[], fetchFunc?: any): { [path: string]: any }
  canAccessRecord(record: Record, requestInfo: RequestInfo, rule: string | null): boolean
  isTransactional(): boolean
}

interface RecordEvent { app: App; record: Record; next(): void }
interface RecordErrorEvent extends RecordEvent { error: any }
interface RecordRequestEvent extends RequestEvent { collection: Collection; record: Record }
interface RecordsListRequestEvent extends RequestEvent {
  collection: Collection
  records: Record[]
  result: { page: number; perPage: number; totalItems: number; totalPages: number; items: Record[] }
}
interface RecordEnrichEvent { app: App; record: Record; requestInfo: RequestInfo; next(): void }
declare function onRecordsListRequest(handler: (e: RecordsListRequestEvent) => void, ...collections: string[]): void
declare function onRecordViewRequest(handler: (e: RecordRequestEvent) => void, ...collections: string[]): void
declare function onRecordCreateRequest(handler: (e: RecordRequestEvent) => void, ...collections: string[]): void
declare function onRecordUpdateRequest(handler: (e: RecordRequestEvent) => void, ...collections: string[]): void
declare function onRecordDeleteRequest(handler: (e: RecordRequestEvent) => void, ...collections: string[]): void
declare function onRecordEnrich(handler: (e: RecordEnrichEvent) => void, ...collections: string[]): void
declare function onRecordValidate(handler: (e: RecordEvent) => void, ...collections: string[]): void
declare function onRecordCreate(handler: (e: RecordEvent) => void, ...collections: string[]): void
declare function onRecordCreateExecute(handler: (e: RecordEvent) => void, ...collections: string[]): void
declare function onRecordAfterCreateSuccess(handler: (e: RecordEvent) => void, ...collections: string[]): void
declare function onRecordAfterCreateError(handler: (e: RecordErrorEvent) => void, ...collections: string[]): void
declare function onRecordUpdate(handler: (e: RecordEvent) => void, ...collections: string[]): void
declare function onRecordUpdateExecute(handler: (e: RecordEvent) => void, ...collections: string[]): void
declare function onRecordAfterUpdateSuccess(handler: (e: RecordEvent) => void, ...collections: string[]): void
declare function onRecordAfterUpdateError(handler: (e: RecordErrorEvent) => void, ...collections: string[]): void
declare function onRecordDelete(handler: (e: RecordEvent) => void, ...collections: string[]): void
declare function onRecordDeleteExecute(handler: (e: RecordEvent) => void, ...collections: string[]): void
declare function onRecordAfterDeleteSuccess(handler: (e: RecordEvent) => void, ...collections: string[]): void
declare function onRecordAfterDeleteError(handler: (e: RecordErrorEvent) => void, ...collections: string[]): void

// ---------------------------------------------------------------- mail (jsmigrate)
interface MailAddress { address: string; name?: string }
declare class MailerMessage {
  constructor(data?: { from?: MailAddress; to?: MailAddress[]; cc?: MailAddress[]; bcc?: MailAddress[]; subject?: string; html?: string; text?: string; headers?: { [key: string]: string } })
  from: MailAddress; to: MailAddress[]; cc: MailAddress[]; bcc: MailAddress[]
  subject: string; html: string; text: string; headers: { [key: string]: string }
}
interface MailClient { send(message: MailerMessage): void }
interface MailerEvent { app: App; message: MailerMessage; mailer: MailClient; next(): void }
interface MailerRecordEvent extends MailerEvent { record: Record; meta: { [key: string]: any } }
declare function onMailerSend(handler: (e: MailerEvent) => void): void
declare function onMailerRecordVerificationSend(handler: (e: MailerRecordEvent) => void, ...collections: string[]): void
declare function onMailerRecordPasswordResetSend(handler: (e: MailerRecordEvent) => void, ...collections: string[]): void
declare function onMailerRecordEmailChangeSend(handler: (e: MailerRecordEvent) => void, ...collections: string[]): void
declare function onMailerRecordOTPSend(handler: (e: MailerRecordEvent) => void, ...collections: string[]): void
declare function onMailerRecordAuthAlertSend(handler: (e: MailerRecordEvent) => void, ...collections: string[]): void

// ---------------------------------------------------------------- realtime (jsmigrate)
declare class SubscriptionMessage { constructor(data: { name: string; data: string | any }); name: string; data: string | any }
interface SubscriptionsClient {
  id(): string
  subscriptions(...prefixes: string[]): { [topic: string]: {} }
  hasSubscription(topic: string): boolean
  send(message: SubscriptionMessage): void
  get(key: string): any
  set(key: string, value: any): void
  unset(key: string): void
  discard(): void
  isDiscarded(): boolean
}
interface SubscriptionsBroker {
  /** Every worker's clients, by id. */
  clients(): { [id: string]: SubscriptionsClient }
  clientById(id: string): SubscriptionsClient
  totalClients(): number
  /** vaultbase: every subscriber of `topic` on every worker. */
  broadcast(topic: string, data: string | any): void
}
interface App {
  newMailClient(): MailClient
  subscriptionsBroker(): SubscriptionsBroker
}
interface RealtimeConnectRequestEvent extends RequestEvent { client: SubscriptionsClient }
interface RealtimeSubscribeRequestEvent extends RequestEvent { client: SubscriptionsClient; subscriptions: string[] }
interface RealtimeMessageEvent { app: App; client: SubscriptionsClient; message: SubscriptionMessage; next(): void }
declare function onRealtimeConnectRequest(handler: (e: RealtimeConnectRequestEvent) => void): void
declare function onRealtimeSubscribeRequest(handler: (e: RealtimeSubscribeRequestEvent) => void): void
declare function onRealtimeMessageSend(handler: (e: RealtimeMessageEvent) => void): void

interface RecordAuthRequestEvent extends RequestEvent { collection: Collection; record: Record; token: string; meta: any; authMethod: string }
interface RecordAuthWithPasswordRequestEvent extends RequestEvent { collection: Collection; record: Record | null; identity: string; identityField: string; password: string }
interface RecordAuthRefreshRequestEvent extends RequestEvent { collection: Collection; record: Record }
interface RecordCreateOTPRequestEvent extends RequestEvent { collection: Collection; record: Record | null; password: string }
interface RecordAuthWithOTPRequestEvent extends RequestEvent { collection: Collection; record: Record; otp: { id: string; collectionRef: string; recordRef: string; sentTo: string } }
interface OAuth2User { id: string; name: string; username: string; email: string; avatarURL: string; accessToken: string; refreshToken: string; expiry: string; rawUser: { [key: string]: any } }
interface RecordAuthWithOAuth2RequestEvent extends RequestEvent {
  collection: Collection
  providerName: string
  oAuth2User: OAuth2User
  /** The record the sign-in will use (linked, signed in, or with the provider's verified address); null for a sign-up. */
  record: Record | null
  /** What a sign-up creates the record from (null when the client sent none); a handler may replace it. */
  createData: { [key: string]: any } | null
  isNewRecord: boolean
}
/** The verification and password-reset flows: `record` is the record with the address (or the token's record). */
interface RecordAccountRequestEvent extends RequestEvent { collection: Collection; record: Record }
interface RecordEmailChangeRequestEvent extends RequestEvent { collection: Collection; record: Record; newEmail: string }
declare function onRecordAuthRequest(handler: (e: RecordAuthRequestEvent) => void, ...collections: string[]): void
declare function onRecordAuthWithPasswordRequest(handler: (e: RecordAuthWithPasswordRequestEvent) => void, ...collections: string[]): void
declare function onRecordAuthRefreshRequest(handler: (e: RecordAuthRefreshRequestEvent) => void, ...collections: string[]): void
declare function onRecordRequestOTPRequest(handler: (e: RecordCreateOTPRequestEvent) => void, ...collections: string[]): void
declare function onRecordAuthWithOTPRequest(handler: (e: RecordAuthWithOTPRequestEvent) => void, ...collections: string[]): void
declare function onRecordAuthWithOAuth2Request(handler: (e: RecordAuthWithOAuth2RequestEvent) => void, ...collections: string[]): void
declare function onRecordRequestVerificationRequest(handler: (e: RecordAccountRequestEvent) => void, ...collections: string[]): void
/** Changes to `e.record` before `e.next()` are stored with the verified state. */
declare function onRecordConfirmVerificationRequest(handler: (e: RecordAccountRequestEvent) => void, ...collections: string[]): void
declare function onRecordRequestPasswordResetRequest(handler: (e: RecordAccountRequestEvent) => void, ...collections: string[]): void
/** Changes to `e.record` before `e.next()` are stored with the new password. */
declare function onRecordConfirmPasswordResetRequest(handler: (e: RecordAccountRequestEvent) => void, ...collections: string[]): void
/** `e.record` is the signed-in record; a handler may replace `e.newEmail`. */
declare function onRecordRequestEmailChangeRequest(handler: (e: RecordEmailChangeRequestEvent) => void, ...collections: string[]): void
/** Changes to `e.record` before `e.next()` are stored with the new email. */
declare function onRecordConfirmEmailChangeRequest(handler: (e: RecordEmailChangeRequestEvent) => void, ...collections: string[]): void
declare namespace $apis {
  /** Writes {token, record, meta?} through onRecordAuthRequest and onRecordEnrich. */
  function recordAuthResponse(e: RequestEvent, record: Record, authMethod: string, meta?: any): void
  function enrichRecord(e: RequestEvent, record: Record, ...expands: string[]): void
  function enrichRecords(e: RequestEvent, records: Record[], ...expands: string[]): void
}

// ------------------------------------------------------------------ background jobs (vaultbase)

interface JobEvent {
  /** The job's id. */
  id: string
  name: string
  /** What `$jobs.enqueue` was given (through JSON). */
  payload: any
  /** 1 for the first attempt. */
  attempt: number
  maxAttempts: number
  app: App
}

interface JobHandlerOptions {
  /** Jobs of this name running at once on one worker (default 4). */
  concurrency?: number
  /** Milliseconds an attempt may run before it is stopped and retried (default 60000). */
  timeout?: number
}

/** Registers the handler of jobs named `name` (top-level code only). Throwing means retry. */
declare function jobsAdd(name: string, handler: (e: JobEvent) => void, options?: JobHandlerOptions): void

interface EnqueueOptions {
  /** Due this many ms from now. */
  delay?: number
  /** Due at this unix time in ms (wins over `delay`). */
  runAt?: number
  /** 1–1000, default 5. */
  maxAttempts?: number
  /** The first retry's delay in ms (default 1000), doubled for each further one. */
  backoff?: number
  /** An enqueue whose key already exists adds nothing and answers that job's id. */
  key?: string
}

interface Jobs {
  /**
   * Enqueues a job and answers its id. Inside `runInTransaction` or a record hook the job
   * exists only if that transaction (the save) commits.
   */
  enqueue(name: string, payload?: any, options?: EnqueueOptions): string
}

declare var $jobs: Jobs
