-- Deployment protection (model::protection): which addresses of a project ask for a
-- password, the password's argon2 hash, and the SHA-256 of the bypass secret for automation.
-- Both hashes are NULL while the mode is 'none'.
ALTER TABLE projects ADD COLUMN protection_mode TEXT NOT NULL DEFAULT 'none';
ALTER TABLE projects ADD COLUMN protection_password TEXT;
ALTER TABLE projects ADD COLUMN protection_bypass TEXT;
