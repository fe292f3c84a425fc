import { describe, expect, it } from 'vitest';
import { dashboardRedirectHtml } from '../../cli/dashboard-redirect.js';

describe('the redirect page `devproxy dashboard` opens instead of a URL with the token', () => {
  const url = 'http://127.0.0.1:41234/#token=0123456789abcdef0123456789abcdef0123456789abcdef';

  it('refreshes to the dashboard URL at once, fragment and all, and sends no referrer', () => {
    const html = dashboardRedirectHtml(url);
    expect(html).toContain(`<meta http-equiv="refresh" content="0;url=${url}">`);
    expect(html).toContain(`<a href="${url}">`);
    expect(html).toContain('<meta name="referrer" content="no-referrer">');
    expect(html).not.toMatch(/<script/);
  });

  it('escapes the URL for the attribute', () => {
    const html = dashboardRedirectHtml('http://127.0.0.1:1/#token="><script>x</script>&');
    expect(html).not.toContain('"><script>');
    expect(html).toContain('&quot;&gt;&lt;script&gt;x&lt;/script&gt;&amp;');
  });
});
