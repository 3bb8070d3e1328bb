// Shared helpers of the browser tests: a confab server on a loopback port with a temporary
// data directory, headless Chromium, and user actions on the web client.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const CONFAB_BIN = process.env.CONFAB_BIN || join(repoRoot, 'target/debug/confab');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const ARTIFACTS = process.env.BROWSER_ARTIFACTS || join(repoRoot, 'artifacts/browser');
export const PASSWORD = 'correct horse battery';
/** Upper bound of every wait on the page; generous for a debug build on a busy machine. */
export const WAIT_MS = 20_000;

/** Returns a TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (probe.address());
      probe.close(() => resolvePort(port));
    });
  });
}

/** A running `confab serve` on 127.0.0.1. */
export class Server {
  /** @param {{ port?: number, dataDir?: string, args?: string[] }} [options] */
  static async start(options = {}) {
    const server = new Server();
    server.args = options.args ?? [];
    server.ownsDataDir = !options.dataDir;
    server.dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'confab-browser-'));
    server.port = options.port ?? await freePort();
    await server.spawn();
    return server;
  }

  /** Starts the binary and waits for its "confab listening on" line. */
  async spawn() {
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([key]) => !key.startsWith('CONFAB_') && key !== 'RUST_LOG'),
    );
    this.child = spawn(CONFAB_BIN, [
      'serve',
      `--listen=127.0.0.1:${this.port}`,
      `--data-dir=${this.dataDir}`,
      // Every test signs several users in from one address within seconds.
      '--auth-burst=1000',
      '--auth-rate=60000',
      '--log=warn',
      // The IRC gateway's default port 6667 may be taken by another server on this machine.
      // Tests that use IRC pass their own --irc-listen on a free port.
      ...(this.args.some((arg) => arg.startsWith('--irc-')) ? [] : ['--irc-enabled=false']),
      ...this.args,
    ], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const child = this.child;
    await new Promise((resolveStart, reject) => {
      const timer = setTimeout(() => reject(new Error(`confab did not start within ${WAIT_MS} ms`)), WAIT_MS);
      let buffered = '';
      child.stdout.on('data', (chunk) => {
        buffered += chunk;
        if (buffered.includes('confab listening on ')) {
          clearTimeout(timer);
          resolveStart(undefined);
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`confab exited with ${code} before listening`));
      });
    });
    this.url = `http://127.0.0.1:${this.port}`;
  }

  /** Stops the process with SIGTERM, or SIGKILL after 15 s. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once('exit', done));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  async close() {
    await this.stop();
    if (this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }

  /**
   * Calls the REST API as a program would.
   * @param {string} method @param {string} path @param {unknown} [body] @param {string} [token]
   */
  async api(method, path, body, token) {
    /** @type {Record<string, string>} */
    const headers = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${this.url}/api/v1${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/**
 * Opens a fresh browser context (its own storage, like another person's browser).
 * @param {import('playwright-core').Browser} browser
 * @param {{ locale?: string, width?: number, height?: number }} [options]
 */
export async function openPage(browser, options = {}) {
  const context = await browser.newContext({
    locale: options.locale ?? 'en-US',
    viewport: { width: options.width ?? 1280, height: options.height ?? 800 },
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  /** @type {string[]} */
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (message) => {
    // Chromium logs every HTTP error status of a fetch; the tests check those answers
    // through what the page shows instead.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  return { context, page, problems };
}

/**
 * Registers through the sign-in screen and waits for the chat screen.
 * @param {import('playwright-core').Page} page @param {string} url @param {string} username
 */
export async function registerInPage(page, url, username, displayName = '') {
  await page.goto(url);
  await page.getByRole('tab', { name: /Register|注册/ }).click();
  await page.locator('#field-username').fill(username);
  await page.locator('#field-password').fill(PASSWORD);
  if (displayName) await page.locator('#field-display_name').fill(displayName);
  await page.locator('#auth-form button[type=submit]').click();
  await page.locator('.composer textarea').waitFor();
}

/** Sends a message with the composer and waits until the server confirmed it. */
export async function sendInPage(/** @type {import('playwright-core').Page} */ page, /** @type {string} */ text) {
  const composer = page.locator('.composer textarea');
  await composer.fill(text);
  await composer.press('Enter');
  await page.locator('.msg:not(.pending) .text', { hasText: text }).last().waitFor();
}

/** Texts of the room's confirmed text messages, in the order shown. */
export function shownTexts(/** @type {import('playwright-core').Page} */ page) {
  return page.locator('.messages .msg:not(.system):not(.pending) .text').allTextContents();
}

/** Saves a screenshot under the artifacts folder. */
export async function screenshot(/** @type {import('playwright-core').Page} */ page, /** @type {string} */ name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}
