-- Issue 18 step 3 in PostgreSQL alone: one payment as two round trips — the token look-up, then
-- the whole booking in one server-side call (bench/payments_function.sql), committed by itself.
\set aid random(1, :naccounts)
\set cents random(1, 9999)
\set spread random(1, :nspread)
SELECT id, user_id, expires_at, revoked_at FROM identity_apitoken WHERE user_id = ':userid' ORDER BY created_at LIMIT 1;
SELECT bench_book_payment(':userid', :aid, :spread, :cents);
