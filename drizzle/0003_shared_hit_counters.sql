-- UNLOGGED by hand: see hit_counters in src/db/schema.ts.
CREATE UNLOGGED TABLE "hit_counters" (
	"key" text PRIMARY KEY NOT NULL,
	"hits" integer NOT NULL,
	"window_ends_at" timestamp with time zone NOT NULL
);
