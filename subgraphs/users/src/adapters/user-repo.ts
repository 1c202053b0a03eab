import type { Pool, RowDataPacket } from 'mysql2/promise';

export interface UserRecord {
  id: string;
  email: string;
  createdAt: Date;
}

export interface UserWithSecret extends UserRecord {
  passwordHash: string;
}

export class EmailTakenError extends Error {
  constructor() {
    super('email taken');
  }
}

interface UserRow extends RowDataPacket {
  id: string;
  email: string;
  password_hash: string;
  created_at: Date;
}

const toRecord = (row: UserRow): UserWithSecret => ({
  id: row.id,
  email: row.email,
  createdAt: row.created_at,
  passwordHash: row.password_hash,
});

/** The users table; SQL lives here and nowhere else. */
export class UserRepository {
  constructor(private readonly pool: Pool) {}

  async insert(user: UserWithSecret): Promise<void> {
    try {
      await this.pool.execute('INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)', [
        user.id,
        user.email,
        user.passwordHash,
        user.createdAt,
      ]);
    } catch (err) {
      if ((err as { code?: string }).code === 'ER_DUP_ENTRY') throw new EmailTakenError();
      throw err;
    }
  }

  async findByEmail(email: string): Promise<UserWithSecret | null> {
    const [rows] = await this.pool.execute<UserRow[]>('SELECT * FROM users WHERE email = ?', [email]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async findById(id: string): Promise<UserRecord | null> {
    const [rows] = await this.pool.execute<UserRow[]>('SELECT * FROM users WHERE id = ?', [id]);
    if (!rows[0]) return null;
    const { passwordHash: _secret, ...user } = toRecord(rows[0]);
    return user;
  }
}
