CREATE TABLE "record_peaks" (
	"record_id" uuid PRIMARY KEY NOT NULL,
	"sample_rate" integer NOT NULL,
	"samples_per_pixel" integer NOT NULL,
	"data" "bytea" NOT NULL
);
--> statement-breakpoint
ALTER TABLE "records" ADD COLUMN "source_format" text DEFAULT 'wav' NOT NULL;--> statement-breakpoint
ALTER TABLE "records" ADD COLUMN "loudness_lufs" real;--> statement-breakpoint
ALTER TABLE "record_peaks" ADD CONSTRAINT "record_peaks_record_id_records_record_id_fk" FOREIGN KEY ("record_id") REFERENCES "public"."records"("record_id") ON DELETE cascade ON UPDATE no action;