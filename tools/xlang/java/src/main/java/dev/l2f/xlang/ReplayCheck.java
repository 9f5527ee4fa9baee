package dev.l2f.xlang;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.avro.file.DataFileReader;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;

/**
 * Reads an `l2f replay --format avro` export with Apache Avro's own container reader and
 * recomputes the replay digest (sha256-chain-v1, documented in crates/audit/src/digest.rs)
 * from the records' fields: the record count and the digest must equal the summary's.
 * Also checks that every decoded event sits in the union branch its event_type names.
 *
 * <p>Usage: ReplayCheck EXPORT.avro SUMMARY.json
 */
public final class ReplayCheck {
  private static void putBytes(MessageDigest md, ByteBuffer b) {
    if (b == null) {
      md.update(ByteBuffer.allocate(4).putInt(-1).array());
      return;
    }
    byte[] a = new byte[b.remaining()];
    b.duplicate().get(a);
    md.update(ByteBuffer.allocate(4).putInt(a.length).array());
    md.update(a);
  }

  private static String hex(byte[] b) {
    StringBuilder s = new StringBuilder();
    for (byte x : b) {
      s.append(String.format("%02x", x));
    }
    return s.toString();
  }

  public static void main(String[] args) throws Exception {
    ObjectMapper json = new ObjectMapper();
    JsonNode summary = json.readTree(new File(args[1]));
    Map<String, byte[]> chains = new HashMap<>();
    Map<String, Long> counts = new HashMap<>();
    long records = 0;
    long decoded = 0;
    String problem = null;
    JsonNode header;
    try (DataFileReader<GenericRecord> reader =
        new DataFileReader<>(new File(args[0]), new GenericDatumReader<>())) {
      header = json.readTree(reader.getMetaString("l2f.replay"));
      for (GenericRecord rec : reader) {
        records++;
        String topic = rec.get("topic").toString();
        int partition = (Integer) rec.get("partition");
        String id = topic + "\u0000" + partition;
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        md.update(chains.getOrDefault(id, new byte[32]));
        byte[] t = topic.getBytes(StandardCharsets.UTF_8);
        md.update(ByteBuffer.allocate(4).putInt(t.length).array());
        md.update(t);
        md.update(ByteBuffer.allocate(4).putInt(partition).array());
        md.update(ByteBuffer.allocate(8).putLong((Long) rec.get("offset")).array());
        Long ts = (Long) rec.get("timestamp");
        md.update(ByteBuffer.allocate(8).putLong(ts == null ? -1 : ts).array());
        putBytes(md, (ByteBuffer) rec.get("key"));
        putBytes(md, (ByteBuffer) rec.get("value"));
        @SuppressWarnings("unchecked")
        List<GenericRecord> headers = (List<GenericRecord>) rec.get("headers");
        md.update(ByteBuffer.allocate(4).putInt(headers.size()).array());
        for (GenericRecord h : headers) {
          byte[] n = h.get("name").toString().getBytes(StandardCharsets.UTF_8);
          md.update(ByteBuffer.allocate(4).putInt(n.length).array());
          md.update(n);
          putBytes(md, (ByteBuffer) h.get("value"));
        }
        chains.put(id, md.digest());
        counts.merge(id, 1L, Long::sum);
        Object event = rec.get("event");
        Object type = rec.get("event_type");
        if (event != null) {
          decoded++;
          GenericRecord e = (GenericRecord) event;
          if (type == null || !e.getSchema().getName().equals(type.toString())
              || ((GenericRecord) e.get("envelope")).get("event_id") == null) {
            problem = "event in the wrong union branch at " + id + "@" + rec.get("offset");
          }
        }
      }
    }
    List<JsonNode> ranges = new ArrayList<>();
    header.get("ranges").forEach(ranges::add);
    ranges.sort(Comparator.comparing((JsonNode r) -> r.get("topic").asText())
        .thenComparingInt(r -> r.get("partition").asInt()));
    MessageDigest all = MessageDigest.getInstance("SHA-256");
    for (JsonNode r : ranges) {
      String id = r.get("topic").asText() + "\u0000" + r.get("partition").asInt();
      String line = r.get("topic").asText() + "\t" + r.get("partition").asInt() + "\t"
          + r.get("start").asLong() + "\t" + r.get("end").asLong() + "\t"
          + counts.getOrDefault(id, 0L) + "\t" + hex(chains.getOrDefault(id, new byte[32])) + "\n";
      all.update(line.getBytes(StandardCharsets.UTF_8));
    }
    String digest = hex(all.digest());
    boolean ok = problem == null
        && records == summary.get("records").asLong()
        && digest.equals(summary.get("digest").asText());
    if (ok) {
      System.out.println("PASS java reads the replay export: " + records + " records ("
          + decoded + " decoded), digest " + digest + " recomputed");
    } else {
      System.out.println("FAIL java reads the replay export: " + records + " records, digest "
          + digest + " vs summary " + summary.get("records") + " records, digest "
          + summary.get("digest") + (problem == null ? "" : "; " + problem));
    }
    System.exit(ok ? 0 : 1);
  }
}
