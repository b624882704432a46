import { defineConfig } from 'vitest/config';

// `npm run soak`: long runs kept out of `npm test`.
export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.ts'],
    testTimeout: 3_600_000,
    hookTimeout: 60_000,
  },
});
