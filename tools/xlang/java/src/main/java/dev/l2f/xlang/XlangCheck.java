package dev.l2f.xlang;

import java.io.File;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.LocalDate;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;

import org.apache.avro.Conversions;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.data.TimeConversions;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;

/**
 * Java side of the cross-implementation checks (Apache Avro, the reference implementation).
 *
 * <p>For every event schema in schemas/: decode the frame the Rust codec wrote (single-object
 * encoding; Java finds the schema by its own CRC-64-AVRO fingerprint), with logical types
 * converted (UUID, Instant, LocalDate, BigDecimal); re-encode it and require identical bytes;
 * write the Java frame for Rust to read; and decode the Rust frame with the oldest released
 * schema as reader (schema resolution). Prints PASS/FAIL lines; exits 1 on any failure.
 *
 * <p>Usage: XlangCheck SCHEMAS_DIR HISTORY_DIR RUST_DIR OUT_DIR
 */
public final class XlangCheck {
  private static int failed = 0;

  private static void verdict(boolean ok, String what, String why) {
    if (ok) {
      System.out.println("PASS java " + what);
    } else {
      failed++;
      System.out.println("FAIL java " + what + ": " + why);
    }
  }

  /** Parses common.avsc, then every event file with the same parser (shared named types). */
  static Map<String, Schema> load(Path dir) throws Exception {
    Schema.Parser parser = new Schema.Parser();
    parser.parse(dir.resolve("common.avsc").toFile());
    Map<String, Schema> out = new TreeMap<>();
    File[] files = dir.toFile().listFiles((d, n) -> n.endsWith(".avsc") && !n.equals("common.avsc"));
    Arrays.sort(files);
    for (File f : files) {
      out.put(f.getName().replace(".avsc", ""), parser.parse(f));
    }
    return out;
  }

  static GenericData model() {
    GenericData model = new GenericData();
    model.addLogicalTypeConversion(new Conversions.DecimalConversion());
    model.addLogicalTypeConversion(new Conversions.UUIDConversion());
    model.addLogicalTypeConversion(new TimeConversions.DateConversion());
    model.addLogicalTypeConversion(new TimeConversions.TimestampMillisConversion());
    return model;
  }

  public static void main(String[] args) throws Exception {
    Path schemas = Path.of(args[0]);
    Path history = Path.of(args[1]);
    Path rust = Path.of(args[2]);
    Path out = Path.of(args[3]);
    Files.createDirectories(out);
    Map<String, Schema> current = load(schemas);
    Map<String, Schema> old = load(history);
    GenericData model = model();

    for (Map.Entry<String, Schema> e : current.entrySet()) {
      String name = e.getKey();
      Schema schema = e.getValue();
      try {
        byte[] frame = Files.readAllBytes(rust.resolve(name + ".bin"));
        long fp = SchemaNormalization.parsingFingerprint64(schema);
        long header = frame.length >= 10 ? ByteBuffer.wrap(frame, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong() : 0;
        if (header != fp) {
          verdict(false, "reads rust " + name, "fingerprint " + header + " != Java's " + fp);
          continue;
        }
        GenericRecord record = new BinaryMessageDecoder<GenericRecord>(model, schema).decode(frame);
        GenericRecord env = (GenericRecord) record.get("envelope");
        boolean typed = env.get("event_id") instanceof UUID && env.get("occurred_at") instanceof Instant;
        if (name.equals("OrderPlaced")) {
          GenericRecord total = (GenericRecord) record.get("total");
          typed &= new BigDecimal("8720.00").equals(total.get("amount"))
              && LocalDate.of(2026, 12, 1).equals(record.get("term_start"))
              && "DE".equals(record.get("bill_to_country").toString());
        }
        if (name.equals("LeadCaptured")) {
          typed &= "GB".equals(record.get("country").toString())
              && "ada.lovelace@example.co.uk".equals(record.get("email").toString());
        }
        ByteBuffer bb = new BinaryMessageEncoder<GenericRecord>(model, schema).encode(record);
        byte[] ours = new byte[bb.remaining()];
        bb.get(ours);
        verdict(typed && Arrays.equals(ours, frame), "reads rust " + name,
            typed ? "re-encoded bytes differ from the Rust bytes" : "logical-type values differ: " + record);
        Files.write(out.resolve(name + ".bin"), ours);

        Schema released = old.get(name);
        if (released != null) {
          BinaryMessageDecoder<GenericRecord> oldReader = new BinaryMessageDecoder<>(model, released);
          oldReader.addSchema(schema);
          GenericRecord resolved = oldReader.decode(frame);
          verdict(resolved.getSchema().equals(released) && resolved.get("envelope").toString().equals(env.toString()),
              "reads rust " + name + " with the released reader schema", "resolved record differs: " + resolved);
        }
      } catch (Exception ex) {
        verdict(false, "checks " + name, ex.toString());
      }
    }
    System.exit(failed == 0 ? 0 : 1);
  }
}
