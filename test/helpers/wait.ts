/** Polls until `condition` holds; fails with `message` after `timeoutMs` (bounded, never a fixed sleep). */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  {
    timeoutMs = 20_000,
    intervalMs = 10,
    message = 'condition',
  }: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}
