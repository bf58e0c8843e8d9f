import js from "@eslint/js";
import prettier from "eslint-config-prettier/flat";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

const PAGE_IMPORT = "A page is imported only by the router: move what pages share to src/components/, src/lib/ or src/api/.";

export default tseslint.config(
  { ignores: ["dist", "node_modules", "src/api/generated", "test-results"] },
  {
    files: ["**/*.{ts,tsx}"],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: { globals: globals.browser },
    plugins: { "react-hooks": reactHooks },
    rules: {
      ...reactHooks.configs.recommended.rules,
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "no-console": ["error", { allow: ["warn", "error"] }],
      // A React Compiler hint; this app does not use the compiler.
      "react-hooks/incompatible-library": "off",
    },
  },
  {
    // A page is a route: what two pages share lives in src/components/, src/lib/ or
    // src/api/, never in one of them. Only the router (App.tsx) and a page's own test
    // import a page; inside src/pages/ every sibling is a page.
    files: ["src/**/*.{ts,tsx}"],
    ignores: ["src/App.tsx", "src/**/*.test.{ts,tsx}"],
    rules: { "no-restricted-imports": ["error", { patterns: [{ regex: "(^|/)pages(/|$)", message: PAGE_IMPORT }] }] },
  },
  {
    files: ["src/pages/**/*.{ts,tsx}"],
    ignores: ["src/**/*.test.{ts,tsx}"],
    rules: { "no-restricted-imports": ["error", { patterns: [{ regex: "^\\./|(^|/)pages(/|$)", message: PAGE_IMPORT }] }] },
  },
  {
    // Node scripts; the e2e ones also hand functions to the page (page.evaluate).
    files: ["e2e/**/*.{js,mjs}", "scripts/**/*.{js,mjs}"],
    extends: [js.configs.recommended],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
  // Layout is Prettier's (npm run format); no ESLint rule may disagree with it.
  prettier,
);
