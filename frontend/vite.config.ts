/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The UI is served by the fleetdeck binary itself (assets embedded from dist/).
// `npm run dev` proxies the API to a primary at FLEETDECK_URL (default http://127.0.0.1:8080).
const api = process.env.FLEETDECK_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    target: "es2022",
    // The API reference page's renderer (Swagger UI, loaded only on that page) is ~1.5 MB.
    chunkSizeWarningLimit: 1600,
  },
  server: {
    proxy: {
      "/api": { target: api, ws: true, changeOrigin: false },
      "/auth": { target: api },
    },
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    css: false,
  },
});
