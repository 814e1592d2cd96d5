-- Per-deployment routing: the compiled vercel.json / _redirects / _headers configuration, as
-- JSON (deploystack_core::routing::RoutingConfig). Written once, when the deployment is
-- published; NULL when the site has no routing files (and for deployments published before
-- this column existed, which therefore keep being served as they were).
ALTER TABLE deployments ADD COLUMN routing TEXT;
