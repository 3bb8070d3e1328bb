// A small Socket.IO v4 client over the WebSocket transport only (Engine.IO protocol 4).
// It speaks the packets Confab uses: the Engine.IO open, ping/pong and close packets,
// and the Socket.IO CONNECT, CONNECT_ERROR, DISCONNECT, EVENT and ACK packets of the
// main namespace. Binary packets and other namespaces are not supported.
// docs/architecture.md explains why the client does not vendor socket.io-client.

const EIO_OPEN = '0';
const EIO_CLOSE = '1';
const EIO_PING = '2';
const EIO_PONG = '3';
const EIO_MESSAGE = '4';

const SIO_CONNECT = '0';
const SIO_DISCONNECT = '1';
const SIO_EVENT = '2';
const SIO_ACK = '3';
const SIO_CONNECT_ERROR = '4';

/** Reconnect delays grow from 0.5 s to at most 10 s, with up to 50% random jitter. */
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10_000;
/** Handshake refusals that a later attempt may overcome. */
const RETRYABLE_REFUSALS = new Set(['shutting_down', 'store_unavailable', 'internal', 'rate_limited']);
/** An acknowledgement that takes longer than this fails with `timeout`. */
const ACK_TIMEOUT_MS = 15_000;

/**
 * @typedef {{ ok: boolean, data?: any, error?: { code: string, message?: string, retry_after_ms?: number } }} AckReply
 */

export class Socket {
  /**
   * @param {() => Record<string, unknown>} auth  returns the CONNECT `auth` object for
   *   each attempt, so each one carries the current language.
   */
  constructor(auth) {
    this.auth = auth;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.connected = false;
    /** Set by close(): no further reconnects. */
    this.stopped = false;
    this.attempt = 0;
    this.nextAckId = 0;
    /** @type {Map<number, { resolve: (reply: AckReply) => void, timer: number }>} */
    this.acks = new Map();
    /** @type {Map<string, Set<(data: any) => void>>} */
    this.handlers = new Map();
    /** @type {number | undefined} */
    this.pingTimer = undefined;
    /** @type {number | undefined} */
    this.retryTimer = undefined;
    this.pingDeadlineMs = 45_000;
  }

  /** Registers a handler for a server event or for `connect`, `disconnect`, `connect_error`. */
  on(/** @type {string} */ event, /** @type {(data: any) => void} */ handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)?.add(handler);
  }

  /** @param {string} event @param {any} [data] */
  fire(event, data) {
    for (const handler of this.handlers.get(event) ?? []) {
      try {
        handler(data);
      } catch (err) {
        console.error(`handler of ${event} failed`, err);
      }
    }
  }

  open() {
    this.stopped = false;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/socket.io/?EIO=4&transport=websocket`);
    this.ws = ws;
    ws.onmessage = (event) => this.onPacket(String(event.data));
    ws.onclose = () => this.onTransportClose(ws);
    ws.onerror = () => ws.close();
  }

  /** Closes the connection for good (sign-out). */
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(EIO_MESSAGE + SIO_DISCONNECT);
      this.ws.close();
    }
  }

  /** @param {string} packet */
  onPacket(packet) {
    const type = packet[0];
    if (type === EIO_OPEN) {
      const open = JSON.parse(packet.slice(1));
      this.pingDeadlineMs = (open.pingInterval ?? 25_000) + (open.pingTimeout ?? 20_000);
      this.armPingDeadline();
      this.send(SIO_CONNECT + JSON.stringify(this.auth()));
    } else if (type === EIO_PING) {
      this.armPingDeadline();
      this.ws?.send(EIO_PONG);
    } else if (type === EIO_CLOSE) {
      this.ws?.close();
    } else if (type === EIO_MESSAGE) {
      this.onSocketIoPacket(packet.slice(1));
    }
  }

  /** @param {string} packet */
  onSocketIoPacket(packet) {
    const type = packet[0];
    let rest = packet.slice(1);
    if (type === SIO_CONNECT) {
      this.connected = true;
      this.attempt = 0;
      this.fire('connect');
    } else if (type === SIO_CONNECT_ERROR) {
      const data = rest ? JSON.parse(rest) : {};
      // Server faults and rate limits pass; any other refusal is final for these
      // credentials, and the page decides what comes next.
      if (!RETRYABLE_REFUSALS.has(data.message)) this.stopped = true;
      this.fire('connect_error', data);
      this.ws?.close();
    } else if (type === SIO_DISCONNECT) {
      // A server-side disconnect (logout elsewhere, shutdown, slow consumer): reconnect
      // unless the page stops us, as the `server:notice` handler may do.
      this.ws?.close();
    } else if (type === SIO_EVENT || type === SIO_ACK) {
      const digits = /^\d*/.exec(rest)?.[0] ?? '';
      rest = rest.slice(digits.length);
      const args = JSON.parse(rest);
      if (type === SIO_ACK) {
        const pending = this.acks.get(Number(digits));
        if (pending) {
          this.acks.delete(Number(digits));
          clearTimeout(pending.timer);
          pending.resolve(args[0]);
        }
      } else if (Array.isArray(args) && typeof args[0] === 'string') {
        this.fire(args[0], args[1]);
      }
    }
  }

  /** @param {string} packet */
  send(packet) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(EIO_MESSAGE + packet);
  }

  /**
   * Emits an event and resolves with its acknowledgement. Never rejects: a lost
   * connection or a missing reply resolve as `disconnected` or `timeout` errors.
   * @param {string} event @param {any} [data] @returns {Promise<AckReply>}
   */
  request(event, data) {
    if (!this.connected) {
      return Promise.resolve({ ok: false, error: { code: 'disconnected' } });
    }
    const id = this.nextAckId++;
    return new Promise((resolve) => {
      const timer = window.setTimeout(() => {
        this.acks.delete(id);
        resolve({ ok: false, error: { code: 'timeout' } });
      }, ACK_TIMEOUT_MS);
      this.acks.set(id, { resolve, timer });
      const args = data === undefined ? [event] : [event, data];
      this.send(SIO_EVENT + id + JSON.stringify(args));
    });
  }

  /** Emits an event without asking for an acknowledgement. */
  emit(/** @type {string} */ event, /** @type {any} */ data) {
    if (this.connected) this.send(SIO_EVENT + JSON.stringify([event, data]));
  }

  /** Closes the socket when no ping arrives in time, because a dead peer may leave it open. */
  armPingDeadline() {
    clearTimeout(this.pingTimer);
    const ws = this.ws;
    this.pingTimer = window.setTimeout(() => ws?.close(), this.pingDeadlineMs + 1000);
  }

  /** @param {WebSocket} ws */
  onTransportClose(ws) {
    if (ws !== this.ws) return;
    clearTimeout(this.pingTimer);
    const wasConnected = this.connected;
    this.connected = false;
    this.ws = null;
    for (const [id, pending] of this.acks) {
      clearTimeout(pending.timer);
      pending.resolve({ ok: false, error: { code: 'disconnected' } });
      this.acks.delete(id);
    }
    if (wasConnected) this.fire('disconnect');
    if (this.stopped) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = base * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.fire('reconnecting', { attempt: this.attempt, delay });
    this.retryTimer = window.setTimeout(() => this.open(), delay);
  }
}
