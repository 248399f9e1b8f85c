ALTER TABLE "records" ADD COLUMN "format" text DEFAULT 'mp3' NOT NULL;--> statement-breakpoint
ALTER TABLE "records" ADD COLUMN "mime_type" text DEFAULT 'audio/mpeg' NOT NULL;