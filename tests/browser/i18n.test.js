// Languages: the browser's language picks zh-CN or en, the switch changes it and is
// remembered, and server errors are shown as sentences of that language.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  PASSWORD, Server, launchBrowser, openPage, registerInPage, screenshot, sendInPage,
} from './support.js';

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

test('zh-CN locale shows Chinese screens', async () => {
  const { page, problems } = await openPage(browser, { locale: 'zh-CN' });
  await page.goto(server.url);
  assert.equal(await page.locator('html').getAttribute('lang'), 'zh-CN');
  await page.getByRole('heading', { name: '欢迎使用 Confab' }).waitFor();
  await page.getByRole('tab', { name: '注册' }).waitFor();
  await screenshot(page, 'sign-in-desktop-zh-CN');

  // The wrong-password error shows in Chinese.
  await page.locator('#field-username').fill('nobody');
  await page.locator('#field-password').fill(PASSWORD);
  await page.locator('#auth-form button[type=submit]').click();
  await page.locator('#auth-form .error', { hasText: '用户名或密码错误。' }).waitFor();

  await registerInPage(page, server.url, 'xiaoming', '小明');
  await page.getByRole('heading', { name: '我的房间' }).waitFor();
  await page.getByRole('button', { name: '发送' }).waitFor();
  await sendInPage(page, '大家好，今天下午三点开会。');
  await page.locator('.msg.system', { hasText: '小明 加入了房间' }).waitFor();
  await page.locator('.online-button', { hasText: '1 人在线' }).click();
  await page.locator('.members .presence', { hasText: '在线' }).waitFor();
  await screenshot(page, 'chat-desktop-zh-CN');
  await page.locator('.members button', { hasText: '关闭' }).click();

  await page.emulateMedia({ colorScheme: 'dark' });
  await screenshot(page, 'chat-desktop-zh-CN-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  await page.setViewportSize({ width: 390, height: 844 });
  await screenshot(page, 'chat-phone-zh-CN');
  await page.getByRole('button', { name: '返回房间列表' }).click();
  await screenshot(page, 'rooms-phone-zh-CN');
  assert.deepEqual(problems, []);
});

test('en locale shows English screens', async () => {
  const { page, problems } = await openPage(browser, { locale: 'en-GB' });
  await page.goto(server.url);
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  await page.getByRole('heading', { name: 'Welcome to Confab' }).waitFor();
  await screenshot(page, 'sign-in-desktop-en');
  await registerInPage(page, server.url, 'emma', 'Emma');
  await page.getByRole('heading', { name: 'My rooms' }).waitFor();
  await page.getByRole('button', { name: 'Send' }).waitFor();
  assert.equal(await page.getByText('我的房间').count(), 0);

  await page.locator('.profile-button').click();
  await page.getByRole('heading', { name: 'Profile' }).waitFor();
  await screenshot(page, 'profile-desktop-en');
  await page.getByRole('button', { name: 'Close' }).click();
  assert.deepEqual(problems, []);
});

test('language switch is remembered', async () => {
  const { page, problems } = await openPage(browser, { locale: 'en-US' });
  await registerInPage(page, server.url, 'li', 'Li');
  await page.locator('.lang-switch').selectOption('zh-CN');
  await page.getByRole('heading', { name: '我的房间' }).waitFor();
  await page.locator('.msg.system', { hasText: 'Li 加入了房间' }).waitFor();

  await page.reload();
  await page.getByRole('heading', { name: '我的房间' }).waitFor();
  assert.equal(await page.locator('.lang-switch').inputValue(), 'zh-CN');

  // Times follow the language too: the join notice's time is formatted for zh-CN.
  const time = page.locator('.msg.system', { hasText: 'Li 加入了房间' }).locator('time');
  const iso = await time.getAttribute('datetime');
  const expected = await page.evaluate((value) => new Intl.DateTimeFormat('zh-CN', { hour: '2-digit', minute: '2-digit' })
    .format(new Date(/** @type {string} */ (value))), iso);
  assert.equal(await time.innerText(), expected);
  assert.deepEqual(problems, []);
});
