CREATE TABLE "records" (
	"id_" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "records_id__seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"user_id" uuid NOT NULL,
	"record_id" uuid NOT NULL,
	"title" text,
	"original_filename" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"size_bytes" bigint NOT NULL,
	"duration_ms" integer NOT NULL,
	"sample_rate" integer NOT NULL,
	"channels" smallint NOT NULL,
	"bitrate" integer NOT NULL,
	CONSTRAINT "records_record_id_unique" UNIQUE("record_id")
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id_" uuid PRIMARY KEY NOT NULL,
	"username" text NOT NULL,
	"access_token_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "records" ADD CONSTRAINT "records_user_id_users_id__fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id_") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "records_user_created_idx" ON "records" USING btree ("user_id","created_at" DESC NULLS LAST,"id_" DESC NULLS LAST);--> statement-breakpoint
CREATE UNIQUE INDEX "users_username_lower_key" ON "users" USING btree (lower("username"));--> statement-breakpoint
CREATE UNIQUE INDEX "users_access_token_hash_key" ON "users" USING btree ("access_token_hash");