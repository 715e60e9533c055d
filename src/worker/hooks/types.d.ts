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
