/**
 * The two HTML documents the server renders: the app's shell (the script builds every page) and the
 * login page. No inline script or style (the Content-Security-Policy allows only our own files);
 * the boot data is JSON in a non-executed script element.
 */

export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  )
}

/** JSON that is safe inside a `<script>` element: no `</script>`, no `<!--`. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c')
}

function head(title: string, assetUrl: (name: string) => string, scripts: boolean): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark light">
<title>${escapeHtml(title)}</title>
<link rel="icon" type="image/svg+xml" href="${assetUrl('icon.svg')}">
${scripts ? `<link rel="stylesheet" href="${assetUrl('uplot.css')}">\n` : ''}<link rel="stylesheet" href="${assetUrl('app.css')}">`
}

export function shellPage(opts: { assetUrl: (name: string) => string; boot: unknown }): string {
  const { assetUrl } = opts
  return `${head('breakid', assetUrl, true)}
<script id="breakid-boot" type="application/json">${scriptJson(opts.boot)}</script>
<script defer src="${assetUrl('uplot.js')}"></script>
<script type="module" src="${assetUrl('app.js')}"></script>
</head>
<body data-view="app">
<a class="skip" href="#main">Skip to content</a>
<div id="app"><p class="loading">Loading…</p></div>
<noscript><p>The dashboard needs JavaScript. <code>breakid query</code> and <code>breakid report</code> answer the same questions.</p></noscript>
</body>
</html>
`
}

export function loginPage(opts: { assetUrl: (name: string) => string; message?: string }): string {
  const message = opts.message
    ? `<p class="notice" role="alert">${escapeHtml(opts.message)}</p>`
    : '<p>Open the one-time link the breakid process printed, or paste its API token.</p>'
  return `${head('breakid — sign in', opts.assetUrl, false)}
<script type="module" src="${opts.assetUrl('app.js')}"></script>
</head>
<body data-view="login">
<main id="main" class="login">
<h1>breakid</h1>
${message}
<form id="login-form">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required spellcheck="false">
<button type="submit">Sign in</button>
<p id="login-error" class="error" role="alert" hidden></p>
</form>
<p class="hint">The token is <code>--api-token</code> / <code>BREAKID_API_TOKEN</code>, or the <code>api-token</code> file in the data directory while the process runs. It is exchanged for a session cookie and not kept in the browser.</p>
</main>
</body>
</html>
`
}
