/* global db, process -- mongosh provides both */
// Run by the mongo image's entrypoint (mongosh) on the first start with an empty data volume: media's GridFS
// account, allowed to read and write its own database only.
db.getSiblingDB('vidmp3_media').createUser({
  user: 'vidmp3_media',
  pwd: process.env.MEDIA_MONGO_PASSWORD,
  roles: [{ role: 'readWrite', db: 'vidmp3_media' }],
});
