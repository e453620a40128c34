// Unit tests of the pure parts (cron preview, magic line, API client): no browser, no JupyterLab.
export default {
  test: { include: ['test/**/*.test.ts'], environment: 'node' }
};
