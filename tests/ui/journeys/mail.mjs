// Settings › Mail: point SMTP at a MailDev started here, save, send a test mail from the page,
// and find it in MailDev; a bad address shows its error next to the address input.
import { api, assert, checkLabels, journey, shot } from '../lib.mjs';
import { startMailDev } from '../maildev.mjs';
import { forgetExpected, openSignedIn } from '../ops.mjs';

journey('mail', async ({ page, errors }) => {
  const maildev = await startMailDev();
  try {
    const token = await openSignedIn(page, '/settings/mail');
    await page.getByRole('heading', { name: 'Mail settings', exact: true }).waitFor();
    await checkLabels(page, 'mail settings');
    await page.getByLabel('Sender address').fill('journey@example.com');
    await page.getByLabel('Use an SMTP server (recommended)').check();
    await page.getByLabel('SMTP host').fill('127.0.0.1');
    await page.getByLabel('Port', { exact: true }).fill(String(maildev.smtpPort));
    await page.getByLabel('Use TLS from the start (implicit TLS, usually port 465)').uncheck();
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('.toast', { hasText: 'Settings saved.' }).waitFor();
    const settings = await api('/api/settings', { token });
    assert.equal(settings.smtp.enabled, true);
    assert.equal(settings.smtp.host, '127.0.0.1');
    assert.equal(settings.smtp.port, maildev.smtpPort);
    assert.equal(settings.meta.senderAddress, 'journey@example.com');

    // A bad address: the API's error sits under the address input.
    const to = page.getByLabel('To address');
    await to.fill('not-an-address');
    await page.getByRole('button', { name: 'Send test mail' }).click();
    await page.locator('.test-mail [data-error-for="email"]').getByText('Must be a valid email address.').waitFor();
    assert.equal(await to.getAttribute('aria-invalid'), 'true');
    await shot(page, 'mail-error');
    forgetExpected(errors, 400);

    await to.fill('journey-test@example.com');
    await page.getByLabel('Template').selectOption('password-reset');
    await page.getByRole('button', { name: 'Send test mail' }).click();
    await page.getByText('Test mail sent to journey-test@example.com.').waitFor();
    const mail = await maildev.waitFor('journey-test@example.com');
    assert.ok(mail.subject, 'the test mail has a subject');
    assert.equal(mail.from?.[0]?.address, 'journey@example.com');
    await shot(page, 'mail');
  } finally {
    await maildev.stop();
  }
});
