// Every screen of the dashboard, by hash path. Each module's default export is
// `screen({params, query}) → Node | Promise<Node>`; a returned node may carry `node.cleanup()`
// (timers, subscriptions), called when the user navigates away.

import { route } from './lib/router.js';

// First run and sign-in (public, no frame).
route('/login', () => import('./screens/auth/login.js'), { public: true, bare: true });
route('/setup/:token', () => import('./screens/auth/setup.js'), { public: true, bare: true });
route('/request-password-reset', () => import('./screens/auth/request-reset.js'), { public: true, bare: true });
route('/auth/confirm-password-reset/:token', () => import('./screens/auth/confirm-reset.js'), { public: true, bare: true });
route('/auth/confirm-verification/:token', () => import('./screens/auth/confirm-verification.js'), { public: true, bare: true });
route('/auth/confirm-email-change/:token', () => import('./screens/auth/confirm-email-change.js'), { public: true, bare: true });
route('/auth/oauth2-redirect-success', () => import('./screens/auth/oauth2-result.js'), { public: true, bare: true });
route('/auth/oauth2-redirect-failure', () => import('./screens/auth/oauth2-result.js'), { public: true, bare: true });

// Collections and records.
route('/collections', () => import('./screens/collections/index.js'));
route('/collections/new', () => import('./screens/collections/edit.js'));
route('/collections/:id/edit', () => import('./screens/collections/edit.js'));
route('/collections/:id', () => import('./screens/records/list.js'));
route('/collections/:id/records/new', () => import('./screens/records/edit.js'));
route('/collections/:id/records/:recordId', () => import('./screens/records/edit.js'));

// Operations.
route('/logs', () => import('./screens/logs.js'));
route('/logs/:id', () => import('./screens/logs.js'));
route('/settings', () => import('./screens/settings/index.js'));
route('/settings/:section', () => import('./screens/settings/index.js'));

// Beyond PocketBase.
route('/cluster', () => import('./screens/cluster.js'));
route('/hooks', () => import('./screens/hooks.js'));
route('/sql', () => import('./screens/sql.js'));
route('/jobs', () => import('./screens/jobs.js'));
route('/webhooks', () => import('./screens/webhooks.js'));
