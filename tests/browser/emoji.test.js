// Emoji in messages render as colour glyphs, not as the empty boxes Chromium draws when
// no installed font has them. scripts/test-browser.sh installs fonts-noto-color-emoji.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Server, launchBrowser, openPage, registerInPage, screenshot, sendInPage } from './support.js';

/** @type {Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;

before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('emoji render in colour', async () => {
  const { page, problems } = await openPage(browser);
  await registerInPage(page, server.url, 'emma', 'Emma');
  await sendInPage(page, 'party 🎉');
  await screenshot(page, 'emoji-message');

  // Draws the emoji with the message text's own font stack and counts clearly coloured
  // pixels. A missing glyph is drawn as a grey or black box, which has none.
  const colouredPixels = await page.locator('.msg .text', { hasText: 'party' }).last().evaluate((text) => {
    const style = getComputedStyle(text);
    const canvas = document.createElement('canvas');
    canvas.width = 64;
    canvas.height = 64;
    const context = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    context.font = `48px ${style.fontFamily}`;
    context.textBaseline = 'top';
    context.fillStyle = '#000';
    context.fillText('🎉', 4, 4);
    const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
    let count = 0;
    for (let i = 0; i < data.length; i += 4) {
      const [red, green, blue, alpha] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
      if (alpha > 128 && Math.max(red, green, blue) - Math.min(red, green, blue) > 60) count += 1;
    }
    return count;
  });
  assert.ok(colouredPixels > 50, `the emoji has ${colouredPixels} coloured pixels; is fonts-noto-color-emoji installed?`);
  assert.deepEqual(problems, []);
});
