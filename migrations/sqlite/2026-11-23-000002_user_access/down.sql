DROP TABLE audit_log;
DROP TABLE api_tokens;
DROP TABLE oauth_logins;
DROP TABLE sessions;
